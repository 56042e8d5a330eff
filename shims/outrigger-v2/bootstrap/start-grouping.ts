/**
 * Which shim grouping a task's runtime options ask for, as `start` needs it before it can name
 * the socket. The grouping lives in the options TOML (../runtime/shim-grouping.ts), which
 * reaches `start` as `runtimeoptions.v1.Options{config_path | config_body}` inside the options
 * Any on stdin (containerd 1.6–2.2) or inside BootstrapParams (2.3). Other option types
 * (containerd.runc.v1.Options) have no such field: pod grouping. The three fields are read with
 * the wire reader directly, so `start` builds no schema registry for them.
 *   runtimeoptions.v1.Options: 1 type_url string, 2 config_path string, 3 config_body bytes.
 */
import fs from 'node:fs';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { shimGroupingFromToml } from '../runtime/shim-grouping.ts';
import type { ShimGrouping } from '../runtime/shim-grouping.ts';

export const RUNTIME_OPTIONS_TYPE = 'runtimeoptions.v1.Options';

/** An options Any as `start` sees it: the type URL and the message bytes. */
export interface OptionsAny {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

/** typeurl names the message after the last '/', with or without a host prefix. */
function messageName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

export interface RuntimeOptionsFile {
  readonly configPath: string;
  readonly configBody: Uint8Array;
}

export function decodeRuntimeOptions(bytes: Uint8Array): RuntimeOptionsFile {
  const r = new BinaryReader(bytes);
  let configPath = '';
  let configBody: Uint8Array = new Uint8Array();
  try {
    while (r.pos < r.len) {
      const [field, wireType] = r.tag();
      if (field === 2 && wireType === WireType.LengthDelimited) configPath = r.string();
      else if (field === 3 && wireType === WireType.LengthDelimited) configBody = r.bytes();
      else r.skip(wireType, field);
    }
  } catch (err) {
    throw new Error(`shim start: ${RUNTIME_OPTIONS_TYPE} (${bytes.length} bytes) does not parse: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return { configPath, configBody };
}

export function shimGroupingOf(options: OptionsAny | undefined): ShimGrouping {
  if (options === undefined || messageName(options.typeUrl) !== RUNTIME_OPTIONS_TYPE) return 'pod';
  const { configPath, configBody } = decodeRuntimeOptions(options.value);
  if (configPath !== '') {
    let text: string;
    try {
      text = fs.readFileSync(configPath, 'utf8');
    } catch (err) {
      throw new Error(`shim start: cannot read runtime options config_path ${configPath}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    return shimGroupingFromToml(text, configPath);
  }
  return shimGroupingFromToml(new TextDecoder().decode(configBody), 'config_body');
}
