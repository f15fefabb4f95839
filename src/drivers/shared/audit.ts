/** The audit log's rows (migration 0012) as records, and which listing statement a filter takes; both drivers. */
import type { JsonObject } from '../../core/task.js';
import type { AuditRecord, ListAuditParams } from '../driver.js';

/** A row: the record's columns, with `detail` as JSON text (SQLite) or parsed (PostgreSQL jsonb). */
export type AuditRow = Omit<AuditRecord, 'detail'> & { detail: string | JsonObject | null };

export function auditRecordOf(row: AuditRow): AuditRecord {
  const detail = typeof row.detail === 'string' ? (JSON.parse(row.detail) as JsonObject) : row.detail;
  return { ...row, detail };
}

/** Statement names shared by both drivers' queries.ts. */
export type AuditListing = 'listAudit' | 'listAuditByToken' | 'listAuditByAction' | 'listAuditByTokenAction';

/** The listing whose index serves the filters given. */
export function auditListingOf(params: ListAuditParams): AuditListing {
  if (params.token !== undefined)
    return params.action !== undefined ? 'listAuditByTokenAction' : 'listAuditByToken';
  return params.action !== undefined ? 'listAuditByAction' : 'listAudit';
}

/** Below every seq: the first page. */
export const AUDIT_SEQ_TOP = Number.MAX_SAFE_INTEGER;
