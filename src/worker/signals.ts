/** The worker services' signals: Node's EventEmitter, with its event map readable from the type. */
import { EventEmitter } from 'node:events';

export type EventMap<E> = Record<keyof E, unknown[]>;

export class Signals<E extends EventMap<E>> extends EventEmitter<E> {
  /**
   * Never set; carries the event map so that helpers (the tests' `watch`) can infer it, which
   * EventEmitter's own conditional method types do not allow.
   */
  declare readonly signalTypes?: E;
}
