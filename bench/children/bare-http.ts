/**
 * The baseline: a bare node:http server doing the least a task API must do per request (read the
 * body, JSON.parse it, answer 202 with a fresh id), with no storage. Prints "LISTENING <port>".
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

setTimeout(() => process.exit(4), 10 * 60_000).unref(); // bounded lifetime

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let code = 202;
    let body: string;
    try {
      JSON.parse(Buffer.concat(chunks).toString('utf8'));
      body = JSON.stringify({ id: randomUUID(), status: 'queued' });
    } catch (err) {
      code = 400;
      body = JSON.stringify({ error: (err as Error).message });
    }
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const address = server.address();
  console.log(`LISTENING ${typeof address === 'object' && address ? address.port : 0}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
