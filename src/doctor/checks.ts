/**
 * The checks behind `outrigger doctor`. Each reads the real system through the paths and PATH it
 * is given (containerd's view, which may differ from the operator's shell), so a test points them
 * at a prepared directory to inject one fault at a time.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { criRuntimesPath, RUNTIME_TYPE } from '../containerd-config/entries.ts';
import { SHIM_BINARY_NAME } from '../cli/invocation.ts';
import { optionsFromToml } from '../../shims/outrigger-v2/runtime/options.ts';
import { parseContainerdVersion } from '../install/containerd-version.ts';
import type { Finding } from './findings.ts';

export interface DoctorEnv {
  readonly containerdBinary: string;
  readonly ctrBinary: string;
  readonly containerdConfig: string;
  /** containerd's PATH: where it looks for shims and bare processor names. */
  readonly containerdPath: string;
  readonly keysDir: string;
  readonly cgroupRoot: string;
  /** Live smoke test target; skipped when absent. */
  readonly socket?: string;
  /** Image (already pulled in `namespace`) for the live `ctr run` under our runtime. */
  readonly smokeImage?: string;
  readonly namespace: string;
}

/** The containerd 1.6+ default stream processors (imgcrypt.md §1); user entries with these ids replace them. */
const DEFAULT_PROCESSORS: Record<string, string[]> = {
  'io.containerd.ocicrypt.decoder.v1.tar.gzip': ['application/vnd.oci.image.layer.v1.tar+gzip+encrypted'],
  'io.containerd.ocicrypt.decoder.v1.tar': ['application/vnd.oci.image.layer.v1.tar+encrypted'],
};

/** `which` over a given PATH; absolute paths are checked as they are. */
export function findOnPath(name: string, searchPath: string): string | undefined {
  const candidates = path.isAbsolute(name) ? [name] : searchPath.split(':').filter((d) => d !== '').map((d) => path.join(d, name));
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      if (fs.statSync(c).isFile()) return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

function firstLine(binary: string, args: string[]): string | undefined {
  try {
    return execFileSync(binary, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 }).split('\n')[0]!.trim();
  } catch {
    return undefined;
  }
}

function get(doc: unknown, keys: readonly string[]): unknown {
  let cur = doc;
  for (const k of keys) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

export function checkContainerdVersion(env: DoctorEnv): Finding {
  const out = firstLine(env.containerdBinary, ['--version']);
  if (out === undefined) {
    return { check: 'containerd', severity: 'error', message: `${env.containerdBinary} --version failed or it is not installed`, fix: 'install containerd 1.6, 1.7 or 2.x, or pass --containerd PATH' };
  }
  const v = parseContainerdVersion(out);
  if (!v?.major) return { check: 'containerd', severity: 'warn', message: `unsupported or unknown version: ${out}`, fix: 'outrigger supports containerd 1.6, 1.7 and 2.x' };
  return { check: 'containerd', severity: 'ok', message: `containerd ${v.version} (${v.major})` };
}

export interface ParsedConfig {
  readonly doc: Record<string, unknown> | undefined;
  readonly findings: Finding[];
}

export function checkConfig(env: DoctorEnv): ParsedConfig {
  let text: string;
  try {
    text = fs.readFileSync(env.containerdConfig, 'utf8');
  } catch (err) {
    return {
      doc: undefined,
      findings: [{ check: 'config', severity: 'error', message: `cannot read ${env.containerdConfig}: ${(err as Error).message}`, fix: `outrigger install --containerd-config ${env.containerdConfig} creates it` }],
    };
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    return {
      doc: undefined,
      findings: [{ check: 'config', severity: 'error', message: `${env.containerdConfig} is not valid TOML: ${(err as Error).message}`, fix: 'fix the syntax at that line (containerd refuses to start with it), or restore an outrigger-backup-* copy' }],
    };
  }
  const findings: Finding[] = [];
  const version = Number(doc.version ?? 1);
  if (version !== 2 && version !== 3) {
    findings.push({ check: 'config', severity: 'error', message: `config version ${version}: outrigger's entries are written for versions 2 and 3`, fix: "convert with 'containerd config migrate' (1.7+), then run outrigger install" });
    return { doc, findings };
  }
  findings.push({ check: 'config', severity: 'ok', message: `${env.containerdConfig} parses (config version ${version})` });
  const runtimes = get(doc, criRuntimesPath(version as 2 | 3));
  const ours = Object.entries((runtimes ?? {}) as Record<string, Record<string, unknown>>).filter(([, rt]) => rt?.runtime_type === RUNTIME_TYPE);
  if (ours.length === 0) {
    findings.push({ check: 'cri runtime', severity: 'warn', message: `no CRI runtime with runtime_type ${RUNTIME_TYPE}`, fix: 'outrigger install (or add the entries printed by outrigger config)' });
  } else {
    for (const [name, rt] of ours) findings.push(...checkRuntimeOptions(env, name, rt));
    if (runtimes !== undefined && get(runtimes, ['runc']) === undefined && get(doc, [...criRuntimesPath(version as 2 | 3).slice(0, -1), 'default_runtime_name']) === undefined) {
      findings.push({ check: 'cri runtime', severity: 'error', message: 'runtimes are declared but runc is not; the CRI plugin fails to load', fix: 'declare runtimes.runc with runtime_type = "io.containerd.runc.v2" (outrigger install does)' });
    }
  }
  return { doc, findings };
}

function checkRuntimeOptions(env: DoctorEnv, name: string, rt: Record<string, unknown>): Finding[] {
  const configPath = get(rt, ['options', 'ConfigPath']);
  let binaryName = 'runc';
  const findings: Finding[] = [];
  if (typeof configPath === 'string' && configPath !== '') {
    try {
      binaryName = optionsFromToml(fs.readFileSync(configPath, 'utf8'), configPath).binaryName;
      findings.push({ check: 'cri runtime', severity: 'ok', message: `handler '${name}' options ${configPath} (BinaryName ${binaryName})` });
    } catch (err) {
      findings.push({ check: 'cri runtime', severity: 'error', message: `handler '${name}': ${(err as Error).message}`, fix: 'outrigger install rewrites the runtime options file' });
    }
  }
  findings.push(checkOciRuntime(env, binaryName, true));
  return findings;
}

export function checkOciRuntime(env: DoctorEnv, binary: string, required: boolean): Finding {
  const found = findOnPath(binary, env.containerdPath);
  if (!found) {
    return required
      ? { check: 'oci runtime', severity: 'error', message: `${binary} is not on containerd's PATH (${env.containerdPath}); the shim cannot start containers`, fix: `install ${binary} (e.g. apt-get install ${path.basename(binary)}) or set BinaryName in the runtime options file` }
      : { check: 'oci runtime', severity: 'info', message: `${binary} not found (optional)` };
  }
  const version = firstLine(found, ['--version']);
  if (version === undefined) return { check: 'oci runtime', severity: 'error', message: `${found} --version failed`, fix: `reinstall ${binary}` };
  return { check: 'oci runtime', severity: 'ok', message: `${found}: ${version}` };
}

export function checkShimOnPath(env: DoctorEnv): Finding {
  const found = findOnPath(SHIM_BINARY_NAME, env.containerdPath);
  if (!found) {
    return {
      check: 'shim',
      severity: 'error',
      message: `${SHIM_BINARY_NAME} is not on containerd's PATH (${env.containerdPath}); containerd cannot start runtime ${RUNTIME_TYPE}`,
      fix: 'outrigger install --prefix /usr/local (its bin is on the systemd default PATH), or add the prefix bin to containerd\'s PATH (systemctl edit containerd: Environment=PATH=...)',
    };
  }
  return { check: 'shim', severity: 'ok', message: `containerd finds ${found}` };
}

function processorMap(doc: Record<string, unknown>): Map<string, { accepts: string[]; path: string }> {
  const out = new Map<string, { accepts: string[]; path: string }>();
  for (const [id, accepts] of Object.entries(DEFAULT_PROCESSORS)) out.set(id, { accepts, path: 'ctd-decoder' });
  for (const [id, p] of Object.entries((doc.stream_processors ?? {}) as Record<string, Record<string, unknown>>)) {
    const accepts = Array.isArray(p?.accepts) ? p.accepts.filter((a): a is string => typeof a === 'string') : [];
    out.set(id, { accepts, path: typeof p?.path === 'string' ? p.path : '' });
  }
  return out;
}

export function checkStreamProcessors(env: DoctorEnv, doc: Record<string, unknown>): Finding[] {
  const findings: Finding[] = [];
  const processors = processorMap(doc);
  const byMedia = new Map<string, string[]>();
  for (const [id, p] of processors) for (const m of p.accepts) byMedia.set(m, [...(byMedia.get(m) ?? []), id]);
  for (const [media, ids] of byMedia) {
    if (ids.length > 1) {
      findings.push({
        check: 'stream processors',
        severity: 'error',
        message: `${media} is accepted by ${ids.join(' and ')}; containerd picks one at random on each start`,
        fix: 'keep one of them (outrigger install --processors without the overlapping one, or remove the other entry)',
      });
    }
  }
  for (const [id, p] of processors) {
    if (!(id in ((doc.stream_processors ?? {}) as object))) continue;
    if (!findOnPath(p.path, env.containerdPath)) {
      findings.push({ check: 'stream processors', severity: 'error', message: `${id}: path ${p.path} is not an executable containerd can find`, fix: 'outrigger install creates the links; or correct path' });
    }
  }
  if (findings.length === 0) findings.push({ check: 'stream processors', severity: 'ok', message: `${processors.size} processor id(s), no media type claimed twice` });
  return findings;
}

/** ocicrypt private keys: present, a readable directory, not readable by others. */
export function checkKeysDir(env: DoctorEnv, needed: boolean): Finding {
  let st: fs.Stats;
  try {
    st = fs.statSync(env.keysDir);
  } catch (err) {
    return {
      check: 'keys dir',
      severity: needed ? 'error' : 'info',
      message: `${env.keysDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      ...(needed ? { fix: `mkdir -m 700 ${env.keysDir} and put the decryption keys there` } : {}),
    };
  }
  if (!st.isDirectory()) return { check: 'keys dir', severity: 'error', message: `${env.keysDir} is not a directory`, fix: `replace it with a directory (mode 700) holding the keys` };
  try {
    fs.accessSync(env.keysDir, fs.constants.R_OK | fs.constants.X_OK);
    fs.readdirSync(env.keysDir);
  } catch (err) {
    return { check: 'keys dir', severity: 'error', message: `${env.keysDir} is not readable: ${(err as Error).message}`, fix: `chmod 700 ${env.keysDir} and chown root (containerd runs the decoder as root)` };
  }
  const loose = fs.readdirSync(env.keysDir).filter((f) => (fs.statSync(path.join(env.keysDir, f)).mode & 0o077) !== 0);
  if ((st.mode & 0o077) !== 0 || loose.length > 0) {
    return {
      check: 'keys dir',
      severity: 'warn',
      message: `${env.keysDir}${loose.length > 0 ? ` (${loose.join(', ')})` : ''} readable by group or others; these are private keys`,
      fix: `chmod -R go-rwx ${env.keysDir}`,
    };
  }
  return { check: 'keys dir', severity: 'ok', message: `${env.keysDir} private and readable` };
}

export function checkCgroups(env: DoctorEnv): Finding {
  if (fs.existsSync(path.join(env.cgroupRoot, 'cgroup.controllers'))) return { check: 'cgroups', severity: 'ok', message: 'cgroup v2 (unified)' };
  if (fs.existsSync(path.join(env.cgroupRoot, 'unified', 'cgroup.controllers'))) return { check: 'cgroups', severity: 'ok', message: 'cgroup v1 (hybrid, v2 at unified/)' };
  if (fs.existsSync(path.join(env.cgroupRoot, 'memory')) || fs.existsSync(path.join(env.cgroupRoot, 'cpu'))) return { check: 'cgroups', severity: 'ok', message: 'cgroup v1 (legacy)' };
  return { check: 'cgroups', severity: 'error', message: `no cgroup hierarchy at ${env.cgroupRoot}`, fix: 'mount cgroup2 at /sys/fs/cgroup' };
}

export function checkLive(env: DoctorEnv): Finding[] {
  if (!env.socket) return [];
  const ctr = (args: string[]) => {
    try {
      return { ok: true, out: execFileSync(env.ctrBinary, ['--address', env.socket!, '--namespace', env.namespace, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }) };
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      return { ok: false, out: (e.stderr ?? e.message).trim() };
    }
  };
  const version = ctr(['version']);
  if (!version.ok) return [{ check: 'live', severity: 'error', message: `containerd at ${env.socket} does not answer: ${version.out}`, fix: 'systemctl status containerd; journalctl -u containerd' }];
  const findings: Finding[] = [{ check: 'live', severity: 'ok', message: `containerd answers at ${env.socket}` }];
  if (env.smokeImage) {
    const id = `outrigger-doctor-${process.pid}`;
    const run = ctr(['run', '--rm', '--runtime', RUNTIME_TYPE, env.smokeImage, id, 'true']);
    findings.push(
      run.ok
        ? { check: 'live', severity: 'ok', message: `ran ${env.smokeImage} under ${RUNTIME_TYPE}` }
        : { check: 'live', severity: 'error', message: `ctr run under ${RUNTIME_TYPE} failed: ${run.out}`, fix: 'see the shim and OCI runtime findings above; containerd logs name the shim error' },
    );
  }
  return findings;
}

export function runChecks(env: DoctorEnv): Finding[] {
  const findings: Finding[] = [checkContainerdVersion(env)];
  const config = checkConfig(env);
  findings.push(...config.findings);
  findings.push(checkShimOnPath(env));
  if (!config.findings.some((f) => f.check === 'oci runtime')) findings.push(checkOciRuntime(env, 'runc', true));
  findings.push(checkOciRuntime(env, 'crun', false));
  findings.push(checkCgroups(env));
  const imgcryptConfigured = config.doc !== undefined && get(config.doc, ['stream_processors', 'io.containerd.ocicrypt.decoder.v1.tar.gzip']) !== undefined;
  if (config.doc) findings.push(...checkStreamProcessors(env, config.doc));
  findings.push(checkKeysDir(env, imgcryptConfigured));
  findings.push(...checkLive(env));
  return findings;
}
