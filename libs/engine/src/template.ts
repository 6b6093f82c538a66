import type { JsonValue } from '#libs/contracts';

/** A template referred to a value that does not exist. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError';
  readonly code = 'template_error';
}

const WHOLE = /^\{\{\s*([A-Za-z0-9_.\-[\]]+)\s*\}\}$/;
const PART = /\{\{\s*([A-Za-z0-9_.\-[\]]+)\s*\}\}/g;

export interface TemplateScope {
  input: JsonValue;
  steps: Record<string, { result: JsonValue }>;
}

function lookup(scope: TemplateScope, path: string): JsonValue {
  const parts = path.replace(/\[(\d+)\]/g, '.$1').split('.').filter(Boolean);
  const root = parts.shift();
  let cur: JsonValue | undefined;
  if (root === 'input') cur = scope.input;
  else if (root === 'steps') {
    const id = parts.shift();
    const step = id === undefined ? undefined : scope.steps[id];
    if (!step) throw new TemplateError(`{{${path}}}: no completed step "${id}"`);
    cur = step as unknown as JsonValue;
  } else throw new TemplateError(`{{${path}}}: references must start with input. or steps.`);
  for (const p of parts) {
    if (cur === null || typeof cur !== 'object') throw new TemplateError(`{{${path}}}: "${p}" is not there`);
    cur = Array.isArray(cur) ? cur[Number(p)] : Object.prototype.hasOwnProperty.call(cur, p) ? cur[p] : undefined;
    if (cur === undefined) throw new TemplateError(`{{${path}}}: "${p}" is not there`);
  }
  return cur as JsonValue;
}

/**
 * Resolves `{{input.x}}` and `{{steps.<id>.result.y}}` in string values, recursively. A string
 * that is exactly one reference takes the referenced value with its type; a reference inside a
 * longer string is interpolated as text (objects as JSON).
 */
export function renderTemplate(value: JsonValue, scope: TemplateScope): JsonValue {
  if (typeof value === 'string') {
    const whole = WHOLE.exec(value);
    if (whole) return lookup(scope, whole[1]);
    return value.replace(PART, (_, path: string) => {
      const v = lookup(scope, path);
      return typeof v === 'string' ? v : JSON.stringify(v);
    });
  }
  if (Array.isArray(value)) return value.map((v) => renderTemplate(v, scope));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(value)) out[k] = renderTemplate(v, scope);
    return out;
  }
  return value;
}
