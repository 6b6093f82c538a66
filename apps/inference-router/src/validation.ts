import { invalid, type FieldProblem } from '#libs/contracts';
import type { ChatCompletionRequest } from './upstream/types.js';

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks the parts of an OpenAI chat request the router and its adapters rely on (messages,
 * tools, limits); other fields pass through to OpenAI-compatible replicas untouched. Throws
 * `invalid_argument` listing every problem.
 */
export function checkChatRequest(body: unknown, where = ''): ChatCompletionRequest {
  const problems: FieldProblem[] = [];
  const p = (field: string, message: string) => problems.push({ field: `${where}${field}`, message });
  if (!isRecord(body)) throw invalid('the request body must be a JSON object', [{ field: where || '/', message: 'must be an object' }]);
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) p('messages', 'must be a non-empty array');
  else {
    messages.forEach((m: unknown, i) => {
      if (!isRecord(m) || typeof m.role !== 'string' || !ROLES.has(m.role)) {
        p(`messages[${i}].role`, 'must be system, developer, user, assistant or tool');
        return;
      }
      const c = m.content;
      if (c !== undefined && c !== null && typeof c !== 'string' && !Array.isArray(c)) p(`messages[${i}].content`, 'must be a string, an array of parts or null');
      if (Array.isArray(c)) c.forEach((part: unknown, j) => {
        if (!isRecord(part) || (part.type === 'text' ? typeof part.text !== 'string' : part.type === 'image_url' ? !isRecord(part.image_url) || typeof part.image_url.url !== 'string' : true)) {
          p(`messages[${i}].content[${j}]`, 'must be a text or image_url part');
        }
      });
      if (m.tool_calls !== undefined) {
        if (m.role !== 'assistant' || !Array.isArray(m.tool_calls)) p(`messages[${i}].tool_calls`, 'only assistant messages carry tool_calls (an array)');
        else m.tool_calls.forEach((t: unknown, j) => {
          if (!isRecord(t) || typeof t.id !== 'string' || !isRecord(t.function) || typeof t.function.name !== 'string' || typeof t.function.arguments !== 'string') {
            p(`messages[${i}].tool_calls[${j}]`, 'needs id and function {name, arguments (a JSON string)}');
          }
        });
      }
      if (m.role === 'tool' && typeof m.tool_call_id !== 'string') p(`messages[${i}].tool_call_id`, 'a tool message names the call it answers');
    });
  }
  if (body.model !== undefined && (typeof body.model !== 'string' || body.model === '' || body.model.length > 200)) p('model', 'must be a model name');
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) p('tools', 'must be an array');
    else body.tools.forEach((t: unknown, i) => {
      if (!isRecord(t) || t.type !== 'function' || !isRecord(t.function) || typeof t.function.name !== 'string' || (t.function.parameters !== undefined && !isRecord(t.function.parameters))) {
        p(`tools[${i}]`, 'must be {type: "function", function: {name, description?, parameters?}}');
      }
    });
  }
  for (const k of ['max_tokens', 'max_completion_tokens'] as const) {
    const v = body[k];
    if (v !== undefined && v !== null && !(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1_000_000)) p(k, 'must be a positive integer');
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') p('stream', 'must be a boolean');
  if (body.temperature !== undefined && body.temperature !== null && !(typeof body.temperature === 'number' && body.temperature >= 0 && body.temperature <= 2)) p('temperature', 'must be a number in [0, 2]');
  if (body.n !== undefined && body.n !== null && body.n !== 1) p('n', 'only n = 1 is supported');
  if (problems.length > 0) throw invalid(`invalid chat request: ${problems.map((x) => `${x.field} ${x.message}`).join('; ')}`, problems);
  return body as ChatCompletionRequest;
}
