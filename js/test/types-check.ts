// Compiled (never run) by test/types.test.js: the .d.ts files accept real use
// and refuse misuse.
import { createInstance, getFreePort, getFreePorts, isFreeOnWildcard, isFreePort, PortError, probePort,
  reservePort, reservePorts, wasiImports, type PortStatus, type Reservation } from 'hbutils-port';
import { permits, networkPolicy } from 'hbutils-port/policy';

const free: boolean = isFreePort(8080);
const port: number = getFreePort({ start: 8000, end: 8100 });
const other: number = getFreePort([8000, 8080], { strict: false });
const several: number[] = getFreePorts(3, { start: 8000, end: 8100, step: 2 });
const status: PortStatus = probePort(8080);
const wildcard: boolean = isFreeOnWildcard(8080);
const held: Reservation = reservePort();
const n: number = held.port;
const socket = held.takeSocket();
socket.isListening();
held[Symbol.dispose]();
for (const r of reservePorts(2)) r.release();
const tenant = createInstance({ block: { start: 20000, end: 20100 }, connect: false });
const checker: boolean = createInstance({ wildcard: true, block: { start: 20000, end: 20100 } }).isFreeOnWildcard(20000);
tenant.getFreePort(null, { strict: true });
const imports: Record<string, unknown> = wasiImports({ network: false });
permits(networkPolicy(), { tag: 'ipv4', val: { port: 1, address: [127, 0, 0, 1] } }, 'tcp-bind');
try { isFreePort(0); } catch (e) { if (e instanceof PortError) { const c: string = e.code; void c; } }
void [free, port, other, several, status, wildcard, checker, n, imports];

// @ts-expect-error a port is a number
isFreePort('8080');
// @ts-expect-error strict is a boolean
getFreePort(undefined, { strict: 'no' });
// @ts-expect-error no such option
createInstance({ udp: true });
// @ts-expect-error port is read-only
held.port = 1;
// @ts-expect-error no such use
permits(networkPolicy(), { tag: 'ipv4', val: { port: 1, address: [127, 0, 0, 1] } }, 'udp-connect');
