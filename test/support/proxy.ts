/** A TCP proxy a test can cut, to make a database unreachable and bring it back. */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** The local port that forwards to the target. */
  port: number;
  /** Drops every connection and refuses new ones. */
  cut: () => Promise<void>;
  /** Listens again on the same port. */
  restore: () => Promise<void>;
}

/** Forwards TCP to `target` (host and port of a URL) until `cut()`. */
export async function tcpProxy(target: URL, defaultPort = 5432): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  const listen = async () => {
    server = createServer((client) => {
      const upstream = connect(Number(target.port || defaultPort), target.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  };
  await listen();
  return {
    port,
    cut: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const s of sockets) s.destroy();
      await closed;
    },
    restore: listen,
  };
}

/** `url` with its host and port replaced by the proxy's. */
export function throughProxy(url: URL, proxy: TcpProxy): URL {
  const proxied = new URL(url);
  proxied.host = `127.0.0.1:${proxy.port}`;
  return proxied;
}
