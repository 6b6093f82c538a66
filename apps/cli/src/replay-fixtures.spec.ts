import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { replayJournal } from '#libs/engine';
import { runCli } from './cli.js';
import { parseJournal } from './commands/replay.js';
import { memoryIO } from './test/fakes.js';

/**
 * The replay regression test (in the manner of Temporal's replay tests): journals recorded from
 * real runs by e2e/cli.e2e-spec.ts are replayed against the current engine. A change to the
 * engine or the graph planner that would decide differently for a run already in the journal
 * fails here, before it ships. If a change is meant to alter decisions, record the fixtures
 * again (delete them and run the CLI e2e spec) and say why in the commit.
 */
const DIR = fileURLToPath(new URL('./fixtures/', import.meta.url));
const FIXTURES = readdirSync(DIR).filter((f) => f.endsWith('.journal.ndjson')).sort();
/** Events the engine decides (the rest record commands and I/O outcomes). */
const DECIDED = new Set(['step.started', 'tool.called', 'run.completed', 'run.failed', 'run.cancelled']);

async function replay(argv: string[], stdin?: string) {
  const m = memoryIO({ env: {}, cwd: DIR, stdin });
  const code = await runCli(argv, m.io);
  return { code, out: m.stdout.text, err: m.stderr.text };
}

describe('recorded journals replay against the current engine', () => {
  it('has recorded journals: a completed, a cancelled and a failed run', () => {
    expect(FIXTURES).toEqual(['cancelled.journal.ndjson', 'completed.journal.ndjson', 'tool-failed.journal.ndjson']);
  });

  it('finds the divergence in the committed tampered journal (the second step\'s op changed by hand)', async () => {
    const r = await replay(['replay', '--from-file', 'tampered/completed-op-lower.ndjson']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^divergence at journal seq 6 \(step 2\) of run run_\w+\n/);
    expect(r.out).toMatch(/recorded: +step\.started .*"op":"lower"/);
    expect(r.out).toMatch(/decided: +step\.started .*"op":"upper"/);
  });

  describe.each(FIXTURES)('%s', (file) => {
    const text = readFileSync(join(DIR, file), 'utf8');
    const events = parseJournal(text, file);
    const terminal = events[events.length - 1];

    it('replays with no divergence and ends in the recorded status', async () => {
      const r = await replay(['replay', '--from-file', file, '--json']);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out)).toMatchObject({ ok: true, runId: terminal.runId, events: events.length, status: terminal.type.slice('run.'.length) });
      const report = replayJournal(events, { globalMaxSteps: 200 });
      expect(report.decisionsChecked).toBe(events.filter((e) => DECIDED.has(e.type)).length);
    });

    it('detects a change to any event the engine decided, at that event', async () => {
      for (const target of events.filter((e) => DECIDED.has(e.type))) {
        const tampered = events.map((e) => (e.seq === target.seq ? { ...e, data: { ...e.data, tampered: true } } : e));
        const r = await replay(['replay', '--from-file', '-', '--json'], tampered.map((e) => JSON.stringify(e)).join('\n'));
        expect({ seq: target.seq, code: r.code }).toEqual({ seq: target.seq, code: 1 });
        expect(JSON.parse(r.out)).toMatchObject({ ok: false, divergence: { seq: target.seq, recorded: { type: target.type }, decided: { type: target.type } } });
      }
    });

    it('reports the engine deciding nothing when a tool outcome is missing', async () => {
      const lastOutcome = [...events].reverse().find((e) => e.type === 'tool.completed' || e.type === 'tool.failed');
      if (!lastOutcome) throw new Error(`${file} has no tool outcome`);
      const dir = mkdtempSync(join(tmpdir(), 'agentmesh-replay-'));
      writeFileSync(join(dir, 'j.ndjson'), events.filter((e) => e.seq !== lastOutcome.seq).map((e) => JSON.stringify(e)).join('\n'));
      const r = await replay(['replay', '--from-file', join(dir, 'j.ndjson')]);
      expect(r.code).toBe(1);
      expect(r.out).toContain(`divergence at journal seq ${terminal.seq}`);
      expect(r.out).toMatch(/decided: +nothing \(the engine would wait here\)/);
    });
  });
});
