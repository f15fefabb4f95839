/**
 * Task ids on both drivers: UUID v4 values that encode the task's `seq`, so the tasks table needs
 * no index on `id`. (SQLite stores the id it computed; PostgreSQL assigns `seq` itself, so it
 * stores none and the driver computes the id from `seq` when it reads a row.)
 *
 * Why: ids of the random kind land all over a B-tree index, so every insert dirtied a page of
 * its own and that page had to be written to the WAL at commit: a large part of an insert's cost
 * (docs/benchmarks.md). Here an id is the AES-128 encryption of its `seq` under a
 * random key kept in the database (`taskq_meta`). That is the construction of NIST's CTR_DRBG:
 * AES applied to a counter under a secret key is cryptographically secure pseudorandom output. So
 * ids stay unguessable and uniformly spread, as RFC 9562 asks of version 4, while a lookup
 * decrypts the id back to a `seq` and reads the row by its primary key.
 *
 * A UUID v4 fixes 6 of its 128 bits (the version and variant bits), so encoding overwrites those
 * 6 bits of the ciphertext. Decoding tries all 64 values they may have held, in one AES call, and
 * keeps the plaintexts of the form `seq` encodes (8 zero bytes, then the number): a wrong guess
 * passes that check with probability 2^-64. A caller still compares the stored id, so a bad
 * guess can only turn into "not found", never into another task.
 */
import { createCipheriv, createDecipheriv, type Cipher, type Decipher } from 'node:crypto';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const BLOCK = 16;
const GUESSES = 64;

export class TaskIdCodec {
  private readonly cipher: Cipher;
  private readonly decipher: Decipher;
  private readonly plain = Buffer.alloc(BLOCK);
  private readonly guesses = Buffer.alloc(BLOCK * GUESSES);

  constructor(key: Buffer) {
    if (key.length !== 16) throw new Error('the task id key must be 16 bytes');
    // ECB over one block at a time: no state carries from one block to the next.
    this.cipher = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
    this.decipher = createDecipheriv('aes-128-ecb', key, null).setAutoPadding(false);
  }

  /** The id of the task stored under `seq`. */
  encode(seq: number): string {
    // Bytes 0-7 stay zero; seq (below 2^53) fills bytes 8-15, big-endian, as two 32-bit halves.
    this.plain.writeUInt32BE(Math.floor(seq / 2 ** 32), 8);
    this.plain.writeUInt32BE(seq >>> 0, 12);
    const out = this.cipher.update(this.plain);
    out[6] = ((out[6] as number) & 0x0f) | 0x40; // version 4
    out[8] = ((out[8] as number) & 0x3f) | 0x80; // RFC 9562 variant
    const hex = out.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /** Whether `id` (any case) is the id of `seq`: decode() candidates are checked with this. */
  matches(id: string, seq: number): boolean {
    return this.encode(seq) === id.toLowerCase();
  }

  /** The `seq` values `id` may encode: usually one, none for an id this codec did not make. */
  decode(id: string): number[] {
    if (!UUID_V4.test(id)) return [];
    const block = Buffer.from(id.replaceAll('-', ''), 'hex');
    for (let guess = 0; guess < GUESSES; guess++) {
      const at = guess * BLOCK;
      block.copy(this.guesses, at);
      // The 4 bits under the version nibble and the 2 under the variant bits.
      this.guesses[at + 6] = ((guess & 0x0f) << 4) | ((block[6] as number) & 0x0f);
      this.guesses[at + 8] = ((guess >> 4) << 6) | ((block[8] as number) & 0x3f);
    }
    const plain = this.decipher.update(this.guesses);
    const seqs: number[] = [];
    for (let at = 0; at < plain.length; at += BLOCK) {
      if (plain.readBigUInt64BE(at) !== 0n) continue;
      const seq = plain.readBigUInt64BE(at + 8);
      if (seq <= BigInt(Number.MAX_SAFE_INTEGER)) seqs.push(Number(seq));
    }
    return seqs;
  }
}
