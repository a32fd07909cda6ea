import type { IpSocketAddress } from '@bytecodealliance/preview2-shim/interfaces/wasi-sockets-network';

/** What a guest may do on the network; every field optional. */
export interface PolicyOptions {
  /** false: no sockets at all, every call access-denied. Default true (loopback TCP). */
  network?: boolean;
  /** Also connect to loopback listeners (in the block, if any). Default false. */
  connect?: boolean;
  /** Only these ports, start..end (end exclusive, at most 65536); port 0 refused. */
  block?: { start: number; end: number } | null;
  /**
   * The port server's check (isFreeOnWildcard) and nothing else: TCP bind and
   * listen and UDP bind on 0.0.0.0 and [::], in the block (required). Default false.
   */
  wildcard?: boolean;
}

/** A checked policy, as networkPolicy returns it. */
export interface NetworkPolicy {
  readonly tcp: boolean;
  readonly connect: boolean;
  readonly block: { readonly start: number; readonly end: number } | null;
  readonly wildcard: boolean;
}

export type SocketUse =
  | 'tcp-bind' | 'tcp-listen' | 'tcp-accept' | 'tcp-connect'
  | 'udp-bind' | 'udp-send' | 'udp-receive';

/** Thrown for a bad policy; `.code` is 'invalid-argument'. */
export class PolicyError extends Error {
  readonly code: 'invalid-argument';
}

/** Checks `options`; throws PolicyError saying what is wrong. */
export function networkPolicy(options?: PolicyOptions | NetworkPolicy): NetworkPolicy;

/** Whether `policy` lets a guest use `addr` for `use`: the Rust host's NetworkPolicy::permits. */
export function permits(policy: NetworkPolicy, addr: IpSocketAddress, use: SocketUse): boolean;

/**
 * The WASI import object for any component transpiled with
 * `jco transpile --instantiation`, granting this policy and nothing more:
 * TCP on 127.0.0.0/8 and ::1, no UDP, no name lookup, connect only when
 * granted, nothing outside the block (a wildcard policy: TCP and UDP binds
 * on 0.0.0.0 and [::] in its block, nothing else). No files, environment or
 * arguments.
 */
export function wasiImports(policy?: PolicyOptions | NetworkPolicy): Record<string, unknown>;
