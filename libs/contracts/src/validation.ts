import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { invalid, type FieldProblem } from './errors.js';

/** JSON Schema validation with Ajv; problems name the field by JSON pointer. */
export class SchemaValidator {
  private readonly ajv = new Ajv({ allErrors: true, strict: false });
  private readonly compiled = new Map<string, ValidateFunction>();

  /** Compiles once per key (a schema id, or a tool name@version) and validates. */
  problems(key: string, schema: object, value: unknown): FieldProblem[] {
    let v = this.compiled.get(key);
    if (!v) {
      v = this.ajv.compile(schema);
      this.compiled.set(key, v);
    }
    return v(value) ? [] : (v.errors ?? []).map(toProblem);
  }

  /** Throws an `invalid_argument` error naming each bad field. */
  assert<T>(key: string, schema: object, value: unknown, what = 'request body'): T {
    const p = this.problems(key, schema, value);
    if (p.length) throw invalid(`${what} is invalid: ${p.map((x) => `${x.field} ${x.message}`).join('; ')}`, p);
    return value as T;
  }

  /** Checks that a schema compiles (for registering tools); returns the compile error if not. */
  compileError(schema: object): string | null {
    try { this.ajv.compile(schema); return null; } catch (e) { return (e as Error).message; }
  }
}

function toProblem(e: ErrorObject): FieldProblem {
  const field = e.instancePath === '' ? '/' : e.instancePath;
  if (e.keyword === 'additionalProperties') return { field: `${e.instancePath}/${String(e.params.additionalProperty)}`, message: 'is not allowed' };
  if (e.keyword === 'required') return { field: `${e.instancePath}/${String(e.params.missingProperty)}`, message: 'is required' };
  return { field, message: e.message ?? 'is invalid' };
}
