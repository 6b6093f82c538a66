export { AgentmeshClient, AgentmeshGrpcError, type AgentmeshClientOptions } from './client.js';
export type * from './types.js';
export {
  toPbValue, toPbStruct, fromPbValue, fromPbStruct, toPbTimestamp, fromPbTimestamp, JsonConversionError,
  type PbValue, type PbStruct, type PbListValue, type PbTimestamp,
} from './json-struct.js';
export {
  encodeStatusDetails, decodeStatusDetails, encodeErrorDetail, decodeErrorDetail, encodeRpcStatus, decodeRpcStatus,
  StatusDetailsDecodeError, STATUS_DETAILS_KEY, ERROR_DETAIL_TYPE_URL, type ErrorDetail, type FieldViolation, type RpcStatus,
} from './status-details.js';
export * from './pb.js';
export * from './planner/index.js';
