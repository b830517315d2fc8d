/**
 * The webhook's own records in the history stream (`created`, the driver's
 * decisions) are signed like its commands: any node may publish to the events
 * exchange, and a forged `created` would make a real build a "duplicate", a
 * forged `approve` would let a rollout go on. Each record carries an Ed25519
 * signature (the one any holder of a public key can check, also after a key
 * rotation) and an HMAC under a key derived from the signing key, which every
 * replica holding that key checks in a microsecond instead of an Ed25519
 * verification per record read.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { SIGNATURE_HEADER, eventKey, names, type Event } from "../shared/protocol.ts";
import type { Decision } from "../shared/records.ts";
import { signBody, verifyBody, type SigningKey, type VerifyKey } from "../shared/signing.ts";

export const MAC_HEADER = "x-arbeider-mac";

export interface Sealer {
  /** The headers that make `body` a record of this webhook. */
  seal(body: Uint8Array): Record<string, string>;
  /** Whether `body` with `headers` is a record of this webhook or of one whose public key it trusts. */
  trusted(body: Uint8Array, headers: Record<string, unknown> | undefined): boolean;
}

export function createSealer(signingKey: SigningKey, verifyKeys: readonly VerifyKey[]): Sealer {
  const macKey = createHmac("sha256", "arbeider history record").update(signingKey.export({ format: "der", type: "pkcs8" })).digest();
  const mac = (body: Uint8Array) => createHmac("sha256", macKey).update(body).digest();
  return {
    seal: (body) => ({ [SIGNATURE_HEADER]: signBody(body, signingKey), [MAC_HEADER]: mac(body).toString("base64") }),
    trusted(body, headers) {
      const given = headers?.[MAC_HEADER];
      if (typeof given === "string" && given.length === 44) {
        const expected = mac(body);
        const bytes = Buffer.from(given, "base64");
        if (bytes.length === expected.length && timingSafeEqual(bytes, expected)) return true;
      }
      return verifyBody(body, headers?.[SIGNATURE_HEADER], verifyKeys);
    },
  };
}

/** A confirmed publish to the broker (shared/broker.ts), or a recording of it in tests. */
export type Publish = (
  exchange: string,
  routingKey: string,
  body: Uint8Array,
  options?: { messageId?: string; headers?: Record<string, string> },
) => Promise<void>;

/** Writes this webhook's records (`created`, decisions) into the history: sealed, on `deployment.<id>`, confirmed. */
export function createRecorder(options: { fleet: string; sealer: Sealer; publish: Publish }) {
  const { events } = names(options.fleet);
  return async function record(value: Event | Decision): Promise<void> {
    const body = new TextEncoder().encode(JSON.stringify(value));
    await options.publish(events, eventKey(value.deployment), body, { headers: options.sealer.seal(body) });
  };
}
export type Recorder = ReturnType<typeof createRecorder>;
