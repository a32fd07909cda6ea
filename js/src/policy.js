// The network a jco-transpiled guest gets, as data: loopback TCP at most,
// narrowed per instance. The same rules as the Rust host's NetworkPolicy
// (host-example/src/policy.rs), checked here because preview2-shim grants
// every address, UDP and name lookup unless its imports are replaced.

import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import {
  createSockets,
  tcp as shimTcp,
  tcpCreateSocket as shimTcpCreateSocket,
  udp as shimUdp,
  udpCreateSocket as shimUdpCreateSocket,
} from '@bytecodealliance/preview2-shim/sockets';

/** Why a policy could not be made: thrown for a bad `block` or option. */
export class PolicyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PolicyError';
    this.code = 'invalid-argument';
  }
}

const checked = new WeakSet();

/**
 * A checked policy: `{ tcp, connect, block, wildcard }`, `block` being
 * `{ start, end }` (end exclusive) or null. Accepts `{ network: false }` for
 * no sockets at all, and `{ wildcard: true, block }` for the port server's
 * check: TCP and UDP binds on 0.0.0.0 and [::] in the block, nothing else.
 */
export function networkPolicy(options = {}) {
  if (checked.has(options)) {
    return options;
  }
  if (options === null || typeof options !== 'object') {
    throw new PolicyError(`a policy is an object such as { block: { start: 20000, end: 20100 } }, not ${String(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!['network', 'connect', 'block', 'wildcard'].includes(key)) {
      throw new PolicyError(`unknown policy option "${key}" (known: network, connect, block, wildcard)`);
    }
  }
  for (const key of ['network', 'connect', 'wildcard']) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') {
      throw new PolicyError(`the policy option "${key}" must be true or false, not ${String(options[key])}`);
    }
  }
  const tcp = options.network !== false;
  const wildcard = tcp && options.wildcard === true;
  if (wildcard && options.block == null) {
    throw new PolicyError('a wildcard policy needs a block: the ports it may bind');
  }
  const policy = Object.freeze({
    tcp,
    // Connect means nothing to a wildcard policy, as in the Rust host.
    connect: tcp && !wildcard && options.connect === true,
    block: options.block == null ? null : portBlock(options.block),
    wildcard,
  });
  checked.add(policy);
  return policy;
}

function portBlock(block) {
  const { start, end } = block;
  const bounds = `${String(start)}..${String(end)}`;
  if (!Number.isInteger(start) || !Number.isInteger(end)) {
    throw new PolicyError(`the port block ${bounds} must have integer start and end`);
  }
  // Port 0 asks the OS for any port, which is exactly what a block rules out.
  const first = Math.max(start, 1);
  if (first >= end || end > 65536) {
    throw new PolicyError(`the port block ${bounds} holds no port (1 to 65535)`);
  }
  return Object.freeze({ start: first, end });
}

function isLoopback(addr) {
  if (addr.tag === 'ipv4') {
    return addr.val.address[0] === 127;
  }
  // Only ::1: an IPv4-mapped address names no socket this guest could have.
  const a = addr.val.address;
  return a.slice(0, 7).every((part) => part === 0) && a[7] === 1;
}

function isUnspecified(addr) {
  return addr.val.address.every((part) => part === 0);
}

/**
 * Whether `policy` lets a guest use `addr` (a wasi:sockets ip-socket-address,
 * `{ tag: 'ipv4' | 'ipv6', val: { address, port } }`) for `use`:
 * 'tcp-bind', 'tcp-listen', 'tcp-accept', 'tcp-connect', 'udp-bind',
 * 'udp-send' or 'udp-receive'. The check wasmtime-wasi makes before each
 * socket operation, with the Rust host's answers.
 */
export function permits(policy, addr, use) {
  const inBlock = (port) => policy.block === null || (port >= policy.block.start && port < policy.block.end);
  const loopback = isLoopback(addr);
  const port = addr.val.port;
  if (policy.wildcard) {
    // The port server's check: binds (and TCP listen) on the wildcard, in
    // the block (which never holds port 0), and nothing else.
    return ['tcp-bind', 'tcp-listen', 'udp-bind'].includes(use) && isUnspecified(addr) && inBlock(port);
  }
  switch (use) {
    case 'tcp-bind': {
      // wasmtime-wasi asks for exactly this before a connect on an unbound
      // socket: the OS's ephemeral bind. Such a socket can only connect to
      // loopback, and a listen on it is checked against the wildcard.
      const implicitForConnect = policy.connect && policy.block === null && isUnspecified(addr) && port === 0;
      return policy.tcp && ((loopback && inBlock(port)) || implicitForConnect);
    }
    case 'tcp-listen':
      return policy.tcp && loopback && inBlock(port);
    case 'tcp-accept':
      // The peer's port is its own ephemeral one, not the tenant's.
      return policy.tcp && loopback;
    case 'tcp-connect':
      return policy.tcp && policy.connect && loopback && inBlock(port);
    case 'udp-bind':
    case 'udp-send':
    case 'udp-receive':
      return false;
    default:
      throw new PolicyError(`unknown socket use "${String(use)}"`);
  }
}

function unspecified(family) {
  return family === 'ipv4'
    ? { tag: 'ipv4', val: { port: 0, address: [0, 0, 0, 0] } }
    : { tag: 'ipv6', val: { port: 0, flowInfo: 0, address: [0, 0, 0, 0, 0, 0, 0, 0], scopeId: 0 } };
}

// Methods that never name an address: passed straight to the shim's socket.
const PLAIN = [
  'finishBind', 'finishListen', 'localAddress', 'remoteAddress', 'isListening', 'addressFamily',
  'setListenBacklogSize', 'keepAliveEnabled', 'setKeepAliveEnabled', 'keepAliveIdleTime',
  'setKeepAliveIdleTime', 'keepAliveInterval', 'setKeepAliveInterval', 'keepAliveCount',
  'setKeepAliveCount', 'hopLimit', 'setHopLimit', 'receiveBufferSize', 'setReceiveBufferSize',
  'sendBufferSize', 'setSendBufferSize', 'subscribe', 'shutdown',
];

const MAKE = Symbol('make');

// Gives `prototype` the methods `names`, each passed on unchanged to the
// shim's socket that `inner` reads out of a policed one (its private field).
function forward(prototype, names, inner) {
  for (const name of names) {
    Object.defineProperty(prototype, name, {
      value: function (...args) {
        return inner(this)[name](...args);
      },
      writable: true,
      configurable: true,
    });
  }
}

// One TcpSocket class per import object, so that a socket of one instance
// cannot be lowered into another (jco checks `instanceof` against the class
// the `wasi:sockets/tcp` import names), as a store's resources stay in it.
function policedTcp(policy) {
  class TcpSocket {
    #inner;
    #bound = null;

    static {
      forward(TcpSocket.prototype, PLAIN, (socket) => socket.#inner);
    }

    constructor(token, inner) {
      if (token !== MAKE) {
        throw new TypeError('TcpSocket has no public constructor');
      }
      this.#inner = inner;
    }

    startBind(network, localAddress) {
      if (!permits(policy, localAddress, 'tcp-bind')) {
        throw 'access-denied';
      }
      this.#inner.startBind(network, localAddress);
      // A failed bind leaves the socket reusable, and the guest may bind it again.
      this.#bound = localAddress;
    }

    startListen() {
      // Unbound: the shim answers invalid-state, as wasmtime does.
      if (this.#bound !== null && !permits(policy, this.#bound, 'tcp-listen')) {
        throw 'access-denied';
      }
      this.#inner.startListen();
    }

    accept() {
      if (this.#bound !== null && !permits(policy, this.#bound, 'tcp-accept')) {
        throw 'access-denied';
      }
      const [socket, input, output] = this.#inner.accept();
      return [new TcpSocket(MAKE, socket), input, output];
    }

    startConnect(network, remoteAddress) {
      // An unbound socket is bound by the OS first; wasmtime checks that bind
      // as the wildcard with port 0, which a block refuses.
      const implicitBindRefused =
        this.#bound === null && !permits(policy, unspecified(remoteAddress.tag), 'tcp-bind');
      if (implicitBindRefused || !permits(policy, remoteAddress, 'tcp-connect')) {
        throw 'access-denied';
      }
      this.#inner.startConnect(network, remoteAddress);
    }

    finishConnect() {
      return this.#inner.finishConnect();
    }

    [Symbol.dispose]() {
      this.#inner[Symbol.dispose]();
    }
  }
  return TcpSocket;
}

const PLAIN_UDP = [
  'finishBind', 'localAddress', 'remoteAddress', 'addressFamily', 'unicastHopLimit', 'setUnicastHopLimit',
  'receiveBufferSize', 'setReceiveBufferSize', 'sendBufferSize', 'setSendBufferSize', 'subscribe',
];

// A UDP socket that may only bind where the policy says, and never send or
// receive: all a wildcard check needs.
function policedUdp(policy) {
  class UdpSocket {
    #inner;

    static {
      forward(UdpSocket.prototype, PLAIN_UDP, (socket) => socket.#inner);
    }

    constructor(token, inner) {
      if (token !== MAKE) {
        throw new TypeError('UdpSocket has no public constructor');
      }
      this.#inner = inner;
    }

    startBind(network, localAddress) {
      if (!permits(policy, localAddress, 'udp-bind')) {
        throw 'access-denied';
      }
      this.#inner.startBind(network, localAddress);
    }

    stream() {
      throw 'access-denied';
    }

    [Symbol.dispose]() {
      this.#inner[Symbol.dispose]();
    }
  }
  return UdpSocket;
}

function udpImports(policy) {
  if (!policy.wildcard) {
    return {
      udpCreateSocket: {
        createUdpSocket() {
          throw 'access-denied';
        },
      },
    };
  }
  const UdpSocket = policedUdp(policy);
  return {
    udp: { ...shimUdp, UdpSocket },
    udpCreateSocket: {
      createUdpSocket(family) {
        return new UdpSocket(MAKE, shimUdpCreateSocket.createUdpSocket(family));
      },
    },
  };
}

/**
 * The WASI import object for any jco-transpiled component (jco transpile
 * --instantiation), granting `policy` and nothing more: TCP on 127.0.0.0/8
 * and ::1 only (or, for a wildcard policy, TCP and UDP binds on 0.0.0.0
 * and [::] in its block), no UDP otherwise, no name lookup, connect only when granted, every
 * bind, listen and connect outside `block` refused (port 0 included).
 * No files, environment or arguments either; stderr is inherited.
 */
export function wasiImports(options = {}) {
  const policy = networkPolicy(options);
  // The shim's public switch turns every socket kind off at once; with TCP
  // on, UDP and name lookup are refused by the replacements below, and TCP
  // is narrowed by the policed socket.
  const sockets = createSockets({ enableNetwork: policy.tcp });
  const TcpSocket = policedTcp(policy);
  const tcpCreateSocket = {
    createTcpSocket(family) {
      return new TcpSocket(MAKE, shimTcpCreateSocket.createTcpSocket(family));
    },
  };
  const shim = new WASIShim({
    sockets: {
      ...sockets,
      ipNameLookup: {
        ...sockets.ipNameLookup,
        resolveAddresses() {
          throw 'permanent-resolver-failure';
        },
      },
      ...udpImports(policy),
    },
    tcpSockets: { tcp: { ...shimTcp, TcpSocket }, tcpCreateSocket },
    sandbox: { preopens: {}, env: {}, args: [] },
  });
  return shim.getImportObject();
}
