/**
 * SIGINT / SIGTERM during a run: the first one asks the run to stop at the next step
 * boundary (the AbortSignal's reason names the signal); the run then emits run_end
 * "interrupted" and the CLI exits 130 or 143.
 */
export function stopOnSignals(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const handlers = (["SIGINT", "SIGTERM"] as const).map((name) => {
    const handler = () => {
      if (!controller.signal.aborted) controller.abort(name);
    };
    Deno.addSignalListener(name, handler);
    return () => Deno.removeSignalListener(name, handler);
  });
  return { signal: controller.signal, dispose: () => handlers.forEach((remove) => remove()) };
}
