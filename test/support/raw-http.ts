/** Raw HTTP over loopback, for what fetch and inject() cannot send. */
import { connect } from 'node:net';

/** Writes raw bytes on a fresh connection, half-closes it, and reads (latin1) until the server closes. */
export function exchange(port: number, bytes: Buffer): Promise<string> {
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
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {}); // a reset after the answer is fine; 'close' follows
    socket.on('close', () => {
      clearTimeout(guard);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.end(bytes);
  });
}
