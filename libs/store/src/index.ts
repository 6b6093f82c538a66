export { KvDocuments, keyToken } from './kv-documents.js';
