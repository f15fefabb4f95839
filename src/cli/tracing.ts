/**
 * Starting an OpenTelemetry SDK for `taskq run` (docs/tracing.md). taskq depends on
 * `@opentelemetry/api` only; exporting is the user's choice. When the environment asks for traces
 * with the standard variables (`OTEL_TRACES_EXPORTER`, or an OTLP endpoint), this loads
 * `@opentelemetry/sdk-node` if the user installed it, and lets it read every other `OTEL_*`
 * variable itself (service name, sampler, headers, propagators). A process that registered an
 * SDK already (`node --import ./otel.js`) is left as it is.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { ConfigError } from '../core/errors.js';
import { activeTracer } from '../queue/tracing.js';

export const SDK_PACKAGE = '@opentelemetry/sdk-node';

/** The part of sdk-node's NodeSDK this uses. */
interface NodeSdk {
  start(): void;
  shutdown(): Promise<void>;
}
type NodeSdkConstructor = new () => NodeSdk;
/** sdk-node is CommonJS: its exports come as named exports or under `default`. */
type NodeSdkModule = { NodeSDK?: NodeSdkConstructor; default?: { NodeSDK?: NodeSdkConstructor } };

export interface Tracing {
  /** Flushes spans not yet exported (on shutdown). */
  shutdown(): Promise<void>;
}

/** Whether the standard variables ask for traces to be exported (and the SDK is not disabled). */
export function tracesRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporter = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporter) return exporter.toLowerCase() !== 'none';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** Where the SDK package is: the working directory's project first, then taskq's own. */
function resolveSdk(): string | undefined {
  for (const base of [join(process.cwd(), 'package.json'), import.meta.url]) {
    try {
      return createRequire(base).resolve(SDK_PACKAGE);
    } catch {
      // not installed there
    }
  }
  return undefined;
}

/**
 * Starts the SDK when the environment asks for traces; undefined when it does not, or when one
 * is registered already. Throws a one-line ConfigError when it asks and the package is missing.
 */
export async function startTracing(env: NodeJS.ProcessEnv, logger: Logger): Promise<Tracing | undefined> {
  if (activeTracer()) {
    logger.info('tracing is on (an OpenTelemetry SDK was registered before taskq started)');
    return undefined;
  }
  if (!tracesRequested(env)) return undefined;
  const path = resolveSdk();
  if (!path) {
    throw new ConfigError(
      `OTEL_* variables ask for traces, but ${SDK_PACKAGE} is not installed: npm install ${SDK_PACKAGE} (or unset OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_ENDPOINT)`,
    );
  }
  const loaded = (await import(pathToFileURL(path).href)) as NodeSdkModule;
  const NodeSDK = loaded.NodeSDK ?? loaded.default?.NodeSDK;
  if (typeof NodeSDK !== 'function') throw new ConfigError(`${path} does not export NodeSDK`);
  const sdk = new NodeSDK();
  sdk.start();
  logger.info(
    {
      exporter: env.OTEL_TRACES_EXPORTER ?? 'otlp',
      endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT,
    },
    `tracing is on (${SDK_PACKAGE})`,
  );
  return sdk;
}
