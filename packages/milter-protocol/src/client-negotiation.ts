import { type Socket, connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { MilterClientOptions } from './client.js';
import { encodeCommand } from './commands.js';
import { MILTER_VERSION } from './constants.js';
import { PacketDecoder } from './decoder.js';
import { MilterError, MilterProtocolError, errorMessage } from './errors.js';
import { type NegotiatedOptions, type OptionOffer, acceptFilterReply, mtaOffer } from './negotiation.js';
import { type MilterResponse, decodeResponse } from './responses.js';
import { type SocketSpec, formatSocketSpec } from './socket-spec.js';

/** Open a socket to the filter (TCP without Nagle's delay); no answer within `timeout` ms is an error. */
export async function connectToFilter(spec: SocketSpec, timeout: number): Promise<Socket> {
  const socket =
    spec.kind === 'unix'
      ? netConnect(spec.path)
      : netConnect({
          host: spec.host === '0.0.0.0' ? '127.0.0.1' : spec.host === '::' ? '::1' : spec.host,
          port: spec.port,
          noDelay: true,
        });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new MilterError('client', `cannot connect to ${formatSocketSpec(spec)}: no answer within ${timeout} ms`));
    }, timeout);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(new MilterError('client', `cannot connect to ${formatSocketSpec(spec)}: ${errorMessage(error)}`, { cause: error }));
    });
  });
  if (spec.kind !== 'unix') socket.setNoDelay(true);
  return socket;
}

/** What negotiation leaves for the client: the agreed options, the decoder and any responses that came with the reply. */
export interface Negotiated {
  options: NegotiatedOptions;
  decoder: PacketDecoder;
  inbox: MilterResponse[];
}

/**
 * SMFIC_OPTNEG over a connected stream: offer what `settings` asks for (by default all the
 * version defines, as Postfix and sendmail do) and check the filter's reply against the
 * offer. On any failure the stream is destroyed and the error thrown.
 */
export async function negotiateWithFilter(stream: Duplex, settings: MilterClientOptions): Promise<Negotiated> {
  const version = settings.version ?? MILTER_VERSION;
  const base = mtaOffer(version);
  const offer: OptionOffer = { version, actions: settings.actions ?? base.actions, protocol: settings.protocol ?? base.protocol };
  const decoder = new PacketDecoder({ maxPacketSize: settings.maxPacketSize });
  const timeout = settings.timeoutMs ?? 30_000;
  const inbox: MilterResponse[] = [];
  const reply = await new Promise<MilterResponse>((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('close', onClose);
      stream.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      try {
        const packets = decoder.push(chunk);
        if (packets.length === 0) return;
        cleanup();
        const [first, ...rest] = packets.map(decodeResponse);
        inbox.push(...rest);
        resolve(first as MilterResponse);
      } catch (error) {
        cleanup();
        reject(error);
      }
    };
    const onClose = () => {
      cleanup();
      reject(new MilterError('negotiate', 'the filter closed the connection during negotiation'));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(new MilterError('negotiate', `socket error: ${errorMessage(error)}`, { cause: error }));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new MilterError('negotiate', `no reply within ${timeout} ms`));
    }, timeout);
    stream.on('data', onData);
    stream.once('close', onClose);
    stream.once('error', onError);
    stream.write(encodeCommand({ type: 'negotiate', ...offer }));
  }).catch((error: unknown) => {
    stream.destroy();
    throw error;
  });
  if (reply.type !== 'negotiate') {
    stream.destroy();
    throw new MilterProtocolError('negotiate', `expected the negotiation reply, got ${reply.type}`);
  }
  let options: NegotiatedOptions;
  try {
    options = acceptFilterReply(offer, reply);
  } catch (error) {
    stream.destroy();
    throw error;
  }
  return { options, decoder, inbox };
}
