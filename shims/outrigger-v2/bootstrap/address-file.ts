/**
 * `<bundle>/address` holds the shim's `unix://` address with no newline; containerd 1.6 and 1.7
 * read it to reconnect after a restart (shim-protocol.md §2.3 step 4, §2.12). Written to a
 * temp file and renamed, so a reader never sees half of it. `shim.pid` is informational.
 */
import fs from 'node:fs';
import path from 'node:path';

function writeAtomic(file: string, content: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}`);
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function writeAddressFile(bundle: string, address: string): void {
  writeAtomic(path.join(bundle, 'address'), address);
}

export function writeShimPidFile(bundle: string, pid: number): void {
  writeAtomic(path.join(bundle, 'shim.pid'), String(pid));
}
