/** The PostgreSQL driver's reserve of seqs fetched ahead (src/drivers/postgres/seq-reserve.ts). */
import { expect, it } from 'vitest';
import { SeqReserve } from '../../src/drivers/postgres/seq-reserve.js';

function sequence() {
  let next = 1;
  const calls: number[] = [];
  const allocate = (count: number) => {
    calls.push(count);
    const seqs = Array.from({ length: count }, (_, i) => next + i);
    next += count;
    return Promise.resolve(seqs);
  };
  return { allocate, calls };
}

it('fetches a batch plus spares once, then serves later batches from the spares in order', async () => {
  const { allocate, calls } = sequence();
  const reserve = new SeqReserve({ allocate, spare: 4, maxAgeMs: 1000, now: () => 0 });
  expect(await reserve.take(2)).toEqual([1, 2]);
  expect(await reserve.take(3)).toEqual([3, 4, 5]);
  expect(calls).toEqual([6]);
  // Not enough spares left for 3: a new fetch, and the one left over is skipped.
  expect(await reserve.take(3)).toEqual([7, 8, 9]);
  expect(calls).toEqual([6, 7]);
});

it('skips spares older than maxAgeMs, so seq order follows insertion order within that time', async () => {
  const { allocate, calls } = sequence();
  let now = 0;
  const reserve = new SeqReserve({ allocate, spare: 10, maxAgeMs: 1000, now: () => now });
  expect(await reserve.take(1)).toEqual([1]);
  now = 1000;
  expect(await reserve.take(1)).toEqual([12]);
  expect(calls).toEqual([11, 11]);
});

it('shares one fetch among concurrent takers and never hands out a seq twice', async () => {
  const { allocate, calls } = sequence();
  const reserve = new SeqReserve({ allocate, spare: 2, maxAgeMs: 1000, now: () => 0 });
  const taken = await Promise.all([reserve.take(2), reserve.take(2), reserve.take(2), reserve.take(1)]);
  const all = taken.flat();
  expect(new Set(all).size).toBe(all.length);
  expect(all).toHaveLength(7);
  expect(calls.length).toBeLessThan(4);
});
