import type { TcpSocket } from '@bytecodealliance/preview2-shim/interfaces/wasi-sockets-tcp';
import type { NetworkPolicy, PolicyOptions } from './policy.js';

export { networkPolicy, permits, wasiImports, PolicyError } from './policy.js';
export type { NetworkPolicy, PolicyOptions, SocketUse } from './policy.js';
export type { TcpSocket };

/** Candidate ports: a list, searched in order, or range(start, end, step) (end exclusive, step default 1). */
export type Candidates = Iterable<number> | { start: number; end: number; step?: number };

/** strict (default true): only candidates; false: the OS picks when none is free. */
export interface SearchOptions {
  strict?: boolean;
}

export type ErrorCode = 'access-denied' | 'no-free-port' | 'invalid-argument' | 'other';
export type ReservationErrorCode = 'released' | 'socket-taken';

/** The component's error (or the package's, for bad input) with its WIT case as `.code`. */
export class PortError extends Error {
  readonly code: ErrorCode | ReservationErrorCode;
}

export type FamilyStatus = 'free' | 'in-use' | 'denied' | 'unsupported';
export interface PortStatus {
  ipv4: FamilyStatus;
  ipv6: FamilyStatus;
}

/** A held port (a listener on 127.0.0.1). Disposable: `using r = reservePort(...)`. */
export class Reservation implements Disposable {
  private constructor();
  /** The port held; throws PortError 'released' or 'socket-taken' once ended. */
  readonly port: number;
  /** The listening wasi:sockets socket, ready for accept; the reservation ends. */
  takeSocket(): TcpSocket;
  /** Frees the port; throws PortError 'released' or 'socket-taken' if already ended. */
  release(): void;
  /** Frees the port unless already ended. */
  [Symbol.dispose](): void;
}

export interface PortUtils {
  readonly policy: NetworkPolicy;
  isFreePort(port: number): boolean;
  getFreePort(ports?: Candidates | null, options?: SearchOptions): number;
  getFreePorts(count: number, ports?: Candidates | null, options?: SearchOptions): number[];
  reservePort(ports?: Candidates | null, options?: SearchOptions): Reservation;
  reservePorts(count: number, ports?: Candidates | null, options?: SearchOptions): Reservation[];
  probePort(port: number): PortStatus;
  isFreeOnWildcard(port: number): boolean;
}

/** An instance of the component with its own policy (default: loopback TCP, any port, no connect). */
export function createInstance(policy?: PolicyOptions | NetworkPolicy): PortUtils;

/** Whether `port` is free on 127.0.0.1 and, where there is IPv6 loopback, on ::1. */
export function isFreePort(port: number): boolean;
/** The first free candidate >= 1024, in order; none given (or none usable, not strict): the OS's choice. */
export function getFreePort(ports?: Candidates | null, options?: SearchOptions): number;
/** `count` distinct free ports by getFreePort's rules. */
export function getFreePorts(count: number, ports?: Candidates | null, options?: SearchOptions): number[];
/** A held port, by getFreePort's rules (walking candidates next-fit). */
export function reservePort(ports?: Candidates | null, options?: SearchOptions): Reservation;
/** `count` held ports, all or none. */
export function reservePorts(count: number, ports?: Candidates | null, options?: SearchOptions): Reservation[];
/** Each family's state of `port`. */
export function probePort(port: number): PortStatus;
/** Whether `port` is free for TCP and UDP on 0.0.0.0 and [::]; needs a policy that grants those binds. */
export function isFreeOnWildcard(port: number): boolean;
