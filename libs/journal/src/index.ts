export { Journal, StaleWriterError } from './journal.js';
