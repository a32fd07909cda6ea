// Is this TCP port free? Give me a free port. The hbutils-port component
// (wit/port.wit) on Node through jco: each instance has its own policy, and
// every answer is the component's own.

import { readFileSync } from 'node:fs';
import { instantiate } from '../gen/hbutils_port.js';
import { networkPolicy, wasiImports } from './policy.js';

export { networkPolicy, permits, wasiImports, PolicyError } from './policy.js';

/** The component's error-code (or reservation-error) as a JS Error with `.code`. */
export class PortError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'PortError';
    this.code = code;
  }
}

// What port-host says for the case that carries no message.
const ACCESS_DENIED = "access denied: the host refused a loopback TCP socket, so the port's state is unknown";
const ENDED = {
  released: 'this reservation was released',
  'socket-taken': 'this reservation has ended: its socket was taken',
};

const modules = new Map();
function coreModule(name) {
  let module = modules.get(name);
  if (module === undefined) {
    module = new WebAssembly.Module(readFileSync(new URL(`../gen/${name}`, import.meta.url)));
    modules.set(name, module);
  }
  return module;
}

// A result's error, thrown by jco as a ComponentError with the WIT value as
// its payload, becomes a PortError; anything else (a trap) is rethrown.
function call(f) {
  try {
    return f();
  } catch (error) {
    const payload = error?.payload;
    if (typeof payload === 'string' && payload in ENDED) {
      throw new PortError(payload, ENDED[payload]);
    }
    if (payload && typeof payload.tag === 'string') {
      throw new PortError(payload.tag, payload.tag === 'access-denied' ? ACCESS_DENIED : payload.val);
    }
    throw error;
  }
}

function invalid(message) {
  return new PortError('invalid-argument', message);
}

function checkPort(port) {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw invalid(`a port is an integer from 1 to 65535, not ${describe(port)}`);
  }
  return port;
}

function describe(value) {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function checkInteger(value, what, min, max) {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${what} must be an integer from ${min} to ${max}, not ${describe(value)}`);
  }
  return value;
}

// undefined/null: none; an array (or any iterable) of ports: explicit;
// { start, end, step = 1 }: range(start, end, step), end exclusive.
function candidates(ports) {
  if (ports === undefined || ports === null) {
    return undefined;
  }
  if (typeof ports === 'object' && !(Symbol.iterator in ports)) {
    const { start, end, step = 1 } = ports;
    for (const key of Object.keys(ports)) {
      if (!['start', 'end', 'step'].includes(key)) {
        throw invalid(`a port range has start, end and step, not "${key}"`);
      }
    }
    return {
      tag: 'range',
      val: {
        // The component says what is wrong with a bound above 65536 or a step of 0.
        start: checkInteger(start, 'a range start', 0, 2 ** 32 - 1),
        end: checkInteger(end, 'a range end', 0, 2 ** 32 - 1),
        step: checkInteger(step, 'a range step', -(2 ** 31), 2 ** 31 - 1),
      },
    };
  }
  if (typeof ports === 'object') {
    const list = Array.from(ports);
    for (const port of list) {
      checkPort(port);
    }
    return { tag: 'explicit', val: Uint16Array.from(list) };
  }
  throw invalid(`candidate ports are an array of ports or { start, end, step }, not ${describe(ports)}`);
}

function strictOption(options) {
  if (options === undefined) {
    return true;
  }
  if (options === null || typeof options !== 'object') {
    throw invalid(`options are an object such as { strict: false }, not ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (key !== 'strict') {
      throw invalid(`unknown option "${key}" (known: strict)`);
    }
  }
  if (options.strict !== undefined && typeof options.strict !== 'boolean') {
    throw invalid(`strict must be true or false, not ${describe(options.strict)}`);
  }
  return options.strict !== false;
}

function checkCount(count) {
  return checkInteger(count, 'a count', 0, 2 ** 32 - 1);
}

/**
 * A held port: a listening socket on 127.0.0.1:port that nobody else can
 * bind. Ended by release(), by takeSocket() (the socket is then the
 * caller's), or by disposal (`using`).
 */
export class Reservation {
  #inner;
  #fromList;
  // How it ended, once known here: 'released' or 'socket-taken'.
  #ended = null;
  #disposed = false;

  constructor(token, inner, fromList) {
    if (token !== MAKE) {
      throw new TypeError('a Reservation comes from reservePort or reservePorts');
    }
    this.#inner = inner;
    this.#fromList = fromList;
  }

  #use(f) {
    if (this.#disposed) {
      throw new PortError(this.#ended, ENDED[this.#ended]);
    }
    try {
      return call(f);
    } catch (error) {
      if (error instanceof PortError && error.code in ENDED) {
        this.#ended = error.code;
      }
      throw error;
    }
  }

  /** The port held; a PortError ('released', 'socket-taken') once ended. */
  get port() {
    return this.#use(() => this.#inner.port());
  }

  /** The listening socket (wasi:sockets/tcp), ready for accept; ends the reservation. */
  takeSocket() {
    const socket = this.#use(() => this.#inner.takeSocket());
    this.#ended = 'socket-taken';
    return socket;
  }

  /** Frees the port now; a PortError ('released', 'socket-taken') if already ended. */
  release() {
    this.#use(() => this.#inner.release());
    this.#ended = 'released';
  }

  /** Frees the port unless the reservation has already ended. */
  [Symbol.dispose]() {
    if (this.#disposed) {
      return;
    }
    if (this.#ended === null) {
      try {
        this.release();
      } catch (error) {
        if (!(error instanceof PortError) || !(error.code in ENDED)) {
          throw error;
        }
      }
    }
    this.#disposed = true;
    // jco 1.35.0 gives every reservation lifted from a list a dispose that
    // drops the list's last handle (its closures capture a `var` of the
    // loop). Such a handle is left to jco's finalizer, which has the right
    // one; release() above already freed the port. test/jco-bug.test.js
    // fails once a jco upgrade fixes it, and then this branch can go.
    if (!this.#fromList) {
      this.#inner[Symbol.dispose]();
    }
  }
}

const MAKE = Symbol('make');

/**
 * One instance of the component, with its own policy (see wasiImports):
 * `{ block: { start, end }, connect: true, network: false }`, all optional;
 * the default is loopback TCP, any port, no connect. `{ wildcard: true,
 * block }` is the port server's check (isFreeOnWildcard) and nothing else.
 */
export function createInstance(policy = {}) {
  const checked = networkPolicy(policy);
  const { port } = instantiate(coreModule, wasiImports(checked));
  return Object.freeze({
    policy: checked,
    isFreePort(p) {
      checkPort(p);
      return call(() => port.isFreePort(p));
    },
    getFreePort(ports, options) {
      const c = candidates(ports);
      const strict = strictOption(options);
      return call(() => port.getFreePort(c, strict));
    },
    getFreePorts(count, ports, options) {
      checkCount(count);
      const c = candidates(ports);
      const strict = strictOption(options);
      return Array.from(call(() => port.getFreePorts(c, count, strict)));
    },
    reservePort(ports, options) {
      const c = candidates(ports);
      const strict = strictOption(options);
      return new Reservation(MAKE, call(() => port.reservePort(c, strict)), false);
    },
    reservePorts(count, ports, options) {
      checkCount(count);
      const c = candidates(ports);
      const strict = strictOption(options);
      return call(() => port.reservePorts(c, count, strict)).map((r) => new Reservation(MAKE, r, true));
    },
    probePort(p) {
      checkPort(p);
      const { ipv4, ipv6 } = call(() => port.probePort(p));
      return { ipv4, ipv6 };
    },
    isFreeOnWildcard(p) {
      checkPort(p);
      return call(() => port.isFreeOnWildcard(p));
    },
  });
}

let shared;
function instance() {
  shared ??= createInstance();
  return shared;
}

/** Whether `port` is free on 127.0.0.1 and (where there is IPv6 loopback) ::1. */
export const isFreePort = (port) => instance().isFreePort(port);
/** The first free candidate >= 1024, in order; with no candidates, the OS's choice. */
export const getFreePort = (ports, options) => instance().getFreePort(ports, options);
/** `count` distinct free ports, by getFreePort's rules. */
export const getFreePorts = (count, ports, options) => instance().getFreePorts(count, ports, options);
/** A held port (a listener), by getFreePort's rules, walking candidates next-fit. */
export const reservePort = (ports, options) => instance().reservePort(ports, options);
/** `count` held ports, all or none. */
export const reservePorts = (count, ports, options) => instance().reservePorts(count, ports, options);
/** Each family's state of `port`: free, in-use, denied or unsupported. */
export const probePort = (port) => instance().probePort(port);
/**
 * Whether `port` is free for TCP and UDP on 0.0.0.0 and [::] (a port
 * server's check). It needs an instance with a wildcard policy
 * (`createInstance({ wildcard: true, block })`); under the default one it
 * is access-denied.
 */
export const isFreeOnWildcard = (port) => instance().isFreeOnWildcard(port);
