/** Every command the multicall binary offers, in `--help` order. */
import type { Command } from 'commander';
import { definePlanned, plannedCommands } from './planned-commands.ts';
import { defineSysSelftest } from '../sys/selftest-command.ts';
import { defineZstd } from '../../processors/zstd/command.ts';
import { defineEstargz } from '../../processors/estargz/command.ts';
import { defineTtrpcCall } from '../ttrpc/call-command.ts';
import { defineShim } from '../../shims/outrigger-v2/command.ts';
import { defineConfig, defineInstall, defineUninstall } from '../install/commands.ts';
import { defineDoctor } from '../doctor/command.ts';
import { defineLog } from '../../loggers/outrigger-log/command.ts';
import { defineImgcrypt } from '../../processors/imgcrypt/command.ts';
import { defineImgcryptImages } from '../../processors/imgcrypt/image-command.ts';

export type CommandDefinition = (program: Command) => void;

export const commandDefinitions: readonly CommandDefinition[] = [
  ...plannedCommands.map((planned) => (program: Command) => definePlanned(program, planned)),
  defineSysSelftest,
  defineZstd,
  defineEstargz,
  defineTtrpcCall,
  defineShim,
  defineInstall,
  defineUninstall,
  defineConfig,
  defineDoctor,
  defineLog,
  defineImgcrypt,
  defineImgcryptImages,
];
