#!/usr/bin/env node
// The `agentmesh` command. The entry is the one place that hands the process's streams and
// environment to the CLI; everything below takes them as arguments (see runCli).
import { runCli } from './cli.js';

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0); // `agentmesh journal r | head`
  throw e;
});

process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, stdin: process.stdin });
