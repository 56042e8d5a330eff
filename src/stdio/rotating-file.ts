/**
 * An append-only log file, optionally rotated by size: the writer behind `file://…?maxSize=`,
 * the shim's fallback file and outrigger-log.
 *
 * Without a rotation policy it is exactly the Go shim's file:// target (shim-protocol.md §4.3):
 * parent dirs made 0755, the file opened O_WRONLY|O_APPEND|O_CREAT 0644, bytes appended as
 * they come. With one, a write that would take the file past maxSize is cut at its last line
 * end that still fits; the file is then renamed to PATH.1 (PATH.1 → PATH.2 …, the oldest beyond
 * maxFiles − 1 overwritten) and a fresh PATH opened, so no file ever exceeds maxSize and a
 * line that fits in maxSize is never split across two files. Callers hand over whole lines
 * (./line-holder.ts); only a single piece longer than maxSize is cut inside, at maxSize.
 *
 * Writes are synchronous: the data is in the file once write() returns, which is what lets
 * close() on Delete leave a complete file behind with nothing in flight.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface RotationPolicy {
  /** Largest size of any one file, in bytes (≥ 1). */
  readonly maxSize: number;
  /** Files kept including the one being written (≥ 1; 1 means the file restarts empty). */
  readonly maxFiles: number;
}

/** Files kept when maxSize is given without maxFiles (the kubelet's containerLogMaxFiles default). */
export const DEFAULT_MAX_FILES = 5;

const { O_WRONLY, O_APPEND, O_CREAT, O_TRUNC, O_NOCTTY } = fs.constants;
const FILE_MODE = 0o644;
const DIR_MODE = 0o755;
const NEWLINE = 0x0a;

export class RotatingFile {
  readonly path: string;
  readonly rotation: RotationPolicy | undefined;
  #fd: number;
  #size: number;
  /** Completed rotations, for logs and tests. */
  rotations = 0;

  private constructor(file: string, rotation: RotationPolicy | undefined, fd: number, size: number) {
    this.path = file;
    this.rotation = rotation;
    this.#fd = fd;
    this.#size = size;
  }

  static open(file: string, rotation?: RotationPolicy): RotatingFile {
    if (rotation !== undefined) {
      if (!Number.isSafeInteger(rotation.maxSize) || rotation.maxSize < 1) throw new RangeError(`${file}: maxSize must be a whole number of bytes ≥ 1, got ${rotation.maxSize}`);
      if (!Number.isSafeInteger(rotation.maxFiles) || rotation.maxFiles < 1) throw new RangeError(`${file}: maxFiles must be a whole number ≥ 1, got ${rotation.maxFiles}`);
    }
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: DIR_MODE });
    const fd = fs.openSync(file, O_WRONLY | O_APPEND | O_CREAT | O_NOCTTY, FILE_MODE);
    return new RotatingFile(file, rotation, fd, fs.fstatSync(fd).size);
  }

  /** Bytes in the current file. */
  get size(): number {
    return this.#size;
  }

  /** Appends `data`; with rotation, cuts only at line ends unless one line exceeds maxSize. */
  write(data: Buffer): void {
    if (this.#fd < 0) throw new Error(`${this.path}: write after close`);
    const policy = this.rotation;
    if (policy === undefined) {
      this.#append(data);
      return;
    }
    let rest = data;
    while (rest.length > 0) {
      const room = policy.maxSize - this.#size;
      if (rest.length <= room) {
        this.#append(rest);
        return;
      }
      const cut = room > 0 ? rest.lastIndexOf(NEWLINE, room - 1) + 1 : 0;
      if (cut > 0) {
        this.#append(rest.subarray(0, cut));
        rest = rest.subarray(cut);
      } else if (this.#size > 0) {
        this.#rotate();
      } else {
        // One line longer than a whole file: it cannot stay in one piece.
        this.#append(rest.subarray(0, policy.maxSize));
        rest = rest.subarray(policy.maxSize);
      }
    }
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    fs.closeSync(fd);
  }

  #append(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) off += fs.writeSync(this.#fd, chunk, off, chunk.length - off);
    this.#size += chunk.length;
  }

  #rotate(): void {
    const keep = this.rotation!.maxFiles;
    fs.closeSync(this.#fd);
    this.#fd = -1;
    let flags = O_WRONLY | O_APPEND | O_CREAT | O_NOCTTY;
    if (keep === 1) {
      flags |= O_TRUNC;
    } else {
      // PATH.1 … PATH.n exist without gaps (we made them); shift the ones that stay, newest last.
      let n = 0;
      while (n < keep - 1 && fs.existsSync(`${this.path}.${n + 1}`)) n++;
      for (let i = Math.min(n, keep - 2); i >= 0; i--) {
        const from = i === 0 ? this.path : `${this.path}.${i}`;
        try {
          fs.renameSync(from, `${this.path}.${i + 1}`);
        } catch (err) {
          throw new Error(`rotating ${this.path}: rename ${from}: ${(err as Error).message}`, { cause: err });
        }
      }
    }
    this.#fd = fs.openSync(this.path, flags, FILE_MODE);
    this.#size = 0;
    this.rotations++;
  }
}

/** PATH, PATH.1, PATH.2 … as they exist, oldest first: the order the lines were written in. */
export function rotatedFilesOldestFirst(file: string): string[] {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const numbered: number[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = name.startsWith(`${base}.`) ? /^\d+$/.exec(name.slice(base.length + 1)) : null;
    if (m) numbered.push(Number(m[0]));
  }
  numbered.sort((a, b) => b - a);
  const out = numbered.map((n) => `${file}.${n}`);
  if (fs.existsSync(file)) out.push(file);
  return out;
}
