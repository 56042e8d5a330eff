/**
 * CRI `ImageService/PullImage` for the imgcrypt e2e test. The shared CRI proto subset
 * (src/api/proto/runtime/v1) has no PullImage yet, so the two tiny messages are framed with
 * protobuf-es's wire writer/reader around the generated ImageSpec:
 *   PullImageRequest { ImageSpec image = 1; … }   PullImageResponse { string image_ref = 1; }
 */
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { ImageSpecSchema } from '../../src/api/gen/runtime/v1/api_pb.ts';
import { unixTarget } from '../../src/grpc/client.ts';

const PULL_IMAGE = '/runtime.v1.ImageService/PullImage';

function encodeRequest(image: string): Buffer {
  const spec = toBinary(ImageSpecSchema, create(ImageSpecSchema, { image }));
  return Buffer.from(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(spec).finish());
}

function decodeResponse(bytes: Buffer): string {
  const reader = new BinaryReader(bytes);
  let imageRef = '';
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) imageRef = reader.string();
    else reader.skip(wireType);
  }
  return imageRef;
}

/** Pulls `image` through containerd's CRI plugin; rejects with the status details CRI returned. */
export async function criPullImage(socket: string, image: string, timeoutMs = 120_000): Promise<string> {
  const client = new grpc.Client(unixTarget(socket), grpc.credentials.createInsecure());
  try {
    return await new Promise<string>((resolve, reject) => {
      client.makeUnaryRequest(
        PULL_IMAGE,
        (value: string) => encodeRequest(value),
        decodeResponse,
        image,
        { deadline: Date.now() + timeoutMs },
        (error, imageRef) => (error ? reject(new Error(`${PULL_IMAGE} ${image}: ${error.details || error.message}`)) : resolve(imageRef ?? '')),
      );
    });
  } finally {
    client.close();
  }
}
