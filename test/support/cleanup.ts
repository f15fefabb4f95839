/** Undo steps a test file registers as its tests go, and fresh folders removed after each test. */
import { afterEach } from 'vitest';
import { tempDir } from './temp.js';

export type Defer = (step: () => unknown) => void;

/**
 * Registers an afterEach that runs the steps deferred during a test, last deferred first (a
 * process is killed before its folder is removed); returns the function that defers one.
 */
export function cleanupAfterEach(): Defer {
  const steps: (() => unknown)[] = [];
  afterEach(async () => {
    for (const step of steps.splice(0).reverse()) await step();
  });
  return (step) => void steps.push(step);
}

/** A fresh temp folder, removed after the test through `defer`. */
export function freshDir(defer: Defer): string {
  const { dir, cleanup } = tempDir();
  defer(cleanup);
  return dir;
}
