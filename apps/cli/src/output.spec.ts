import { describe, expect, it } from '@jest/globals';
import { compactJson, formatDuration, formatTime, keyValues, Output, statusText, stripAnsi, table } from './output.js';
import { Captured } from './test/fakes.js';

describe('output formatting', () => {
  it('aligns table columns on the widest cell, ignoring colour codes', () => {
    const t = table(['ID', 'STATUS', 'STEPS'], [['run_a', statusText('completed', true), '2'], ['run_bbbbbb', 'failed', '10']]);
    expect(stripAnsi(t)).toBe(['ID          STATUS     STEPS', 'run_a       completed  2', 'run_bbbbbb  failed     10', ''].join('\n'));
  });

  it('aligns key/value blocks and leaves out undefined values', () => {
    expect(keyValues([['run', 'r1'], ['session', undefined], ['status', 'ok']])).toBe('run:     r1\nstatus:  ok\n');
  });

  it('formats durations, instants and long JSON', () => {
    expect(formatDuration(12.4)).toBe('12 ms');
    expect(formatDuration(1534)).toBe('1.53 s');
    expect(formatDuration(12_500)).toBe('12.5 s');
    expect(formatDuration(123_000)).toBe('2m 03s');
    expect(formatTime('2025-01-01T12:00:03.120Z')).toBe('2025-01-01 12:00:03');
    expect(compactJson({ a: 'x'.repeat(50) }, 20)).toHaveLength(20);
    expect(compactJson({ a: 1 })).toBe('{"a":1}');
  });

  it('colours run statuses only when stdout is a terminal and NO_COLOR is unset', () => {
    const tty = new Output(new Captured(true), new Captured(), false, {});
    const pipe = new Output(new Captured(false), new Captured(), false, {});
    const noColour = new Output(new Captured(true), new Captured(), false, { NO_COLOR: '1' });
    expect(tty.status('failed')).toBe('\x1b[31mfailed\x1b[0m');
    expect(pipe.status('failed')).toBe('failed');
    expect(noColour.status('failed')).toBe('failed');
  });

  it('prints JSON documents pretty and NDJSON lines compact', () => {
    const s = new Captured();
    const o = new Output(s, new Captured(), true, {});
    o.document({ a: [1] });
    o.line({ b: 2 });
    expect(s.text).toBe('{\n  "a": [\n    1\n  ]\n}\n{"b":2}\n');
  });
});
