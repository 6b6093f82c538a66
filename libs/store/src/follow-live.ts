/**
 * The live loop of a projector: runs `pass` (which follows its stream until the consumer ends)
 * again and again until `stopped()`; after an end or a failure (reported to `interrupted`) it
 * waits `retryMs` and resumes (the pass starts from the projector's checkpoint).
 */
export async function followLive(
  pass: () => Promise<unknown>, stopped: () => boolean, interrupted: (err: unknown) => void, retryMs = 1000,
): Promise<void> {
  while (!stopped()) {
    try {
      await pass();
      if (!stopped()) await new Promise((r) => setTimeout(r, retryMs)); // the consumer ended (connection closed?)
    } catch (err) {
      if (stopped()) return;
      interrupted(err);
      await new Promise((r) => setTimeout(r, retryMs));
    }
  }
}
