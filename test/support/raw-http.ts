/** Raw HTTP over loopback, for what fetch and inject() cannot send. */
import { connect } from 'node:net';

/**
 * Writes raw bytes on a fresh connection, half-closes it, and reads (latin1) until the server closes.
 * `halfClose: 'after-answer'` half-closes only once the answer starts: Node's server aborts a
 * request still in flight when the client's FIN arrives (httpAllowHalfOpen is off), so a request
 * whose route is slower than the FIN (a loaded machine) would get no answer at all.
 */
export function exchange(
  port: number,
  bytes: Buffer,
  { halfClose = 'now' }: { halfClose?: 'now' | 'after-answer' } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    // A guard, not a wait: a server that never closes a half-closed socket is a failure.
    const guard = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`no close within 5 s after ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}`),
      );
    }, 5000);
    socket.on('data', (chunk: Buffer) => {
      if (chunks.length === 0 && halfClose === 'after-answer') socket.end();
      chunks.push(chunk);
    });
    socket.on('error', () => {}); // a reset after the answer is fine; 'close' follows
    socket.on('close', () => {
      clearTimeout(guard);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    if (halfClose === 'now') socket.end(bytes);
    else socket.write(bytes);
  });
}
