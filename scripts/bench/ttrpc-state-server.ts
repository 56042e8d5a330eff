/**
 * The server side of the ttrpc benchmark: our TtrpcServer serving the Task service (v2 and v3
 * names, as the shim will) with State and Connect only. State answers for one container from a
 * response built once, shaped like the Go runc shim's for a running task; that is also all the Go
 * shim does for a running init (a map lookup under its mutex and an in-memory state machine;
 * no runc call, no /proc read), so both sides do transport and protobuf work only.
 *
 *   node scripts/bench/ttrpc-state-server.ts --socket PATH --id CONTAINER_ID
 *
 * Prints `listening PATH` when it accepts connections; SIGTERM or SIGINT shut it down gracefully.
 */
import { create } from '@bufbuild/protobuf';
import { parseArgs } from 'node:util';
import { StateResponseSchema } from '../../src/api/gen/containerd/task/v2/shim_pb.ts';
import type { StateResponse } from '../../src/api/gen/containerd/task/v2/shim_pb.ts';
import { Status as TaskStatus } from '../../src/api/gen/containerd/types/task/task_pb.ts';
import { registerTaskService } from '../../src/api/task-service.ts';
import { goZeroTimestamp } from '../../src/api/timestamp.ts';
import { TtrpcServer } from '../../src/ttrpc/server.ts';
import { Code, TtrpcError } from '../../src/ttrpc/status.ts';

const USAGE = 'usage: node scripts/bench/ttrpc-state-server.ts --socket PATH --id CONTAINER_ID';

/** What the Go shim answers for a running container started by CRI (k8s.io namespace, stdio FIFOs). */
function runningStateResponse(id: string, pid: number): StateResponse {
  const bundle = `/run/containerd/io.containerd.runtime.v2.task/k8s.io/${id}`;
  const fifo = `/run/containerd/io.containerd.grpc.v1.cri/containers/${id}/io/2871593312`;
  return create(StateResponseSchema, {
    id,
    bundle,
    pid,
    status: TaskStatus.RUNNING,
    stdin: '',
    stdout: `${fifo}/${id}-stdout`,
    stderr: `${fifo}/${id}-stderr`,
    terminal: false,
    exitStatus: 0,
    exitedAt: goZeroTimestamp(),
  });
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({ options: { socket: { type: 'string' }, id: { type: 'string' } }, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${USAGE}`);
  }
  const { socket, id } = values;
  if (!socket || !id) throw new Error(`--socket and --id are required\n${USAGE}`);

  const containers = new Map([[id, runningStateResponse(id, 4242)]]);
  const server = new TtrpcServer();
  registerTaskService(server, {
    state: (request) => {
      // The Go shim's words for an unknown container and for an exec it does not have.
      const state = containers.get(request.id);
      if (state === undefined) throw new TtrpcError(Code.NotFound, `container ${request.id} not created: not found`);
      if (request.execId !== '') throw new TtrpcError(Code.NotFound, `process ${request.execId} does not exist ${request.id}: not found`);
      return state;
    },
    connect: (request) => ({ shimPid: process.pid, taskPid: containers.get(request.id)?.pid ?? 0 }),
  });
  await server.listen(socket);
  const stop = () => {
    void server.shutdown().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  console.log(`listening ${socket}`);
}

main().catch((err: unknown) => {
  console.error(`ttrpc-state-server: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
