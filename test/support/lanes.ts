/**
 * Runs `fn` over `count` indexes with `lanes` at a time: lane k takes k, k + lanes, k + 2·lanes…
 * one after another. For e2e load where every item is alike (so a static split keeps every lane
 * busy about as long) and the results must come back in index order.
 */
export async function inLanes<T>(count: number, lanes: number, fn: (index: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  await Promise.all(
    Array.from({ length: Math.min(lanes, count) }, async (_, lane) => {
      for (let i = lane; i < count; i += lanes) results[i] = await fn(i);
    }),
  );
  return results;
}
