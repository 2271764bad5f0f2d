// One pusher-js 8 client, driven line by line over stdin/stdout by the Python tests
// (tests/integration/js_helpers.py). It behaves as a browser app would: the app code only uses
// pusher-js' public API; the extra hooks on the connection manager and the transport only observe.
//
// stdin  (one JSON object a line): {"id": <n>, "cmd": "<name>", ...arguments}
// stdout (one JSON object a line): {"t": <ms since epoch>, "type": "<kind>", ...}
//   reply         {id, ok, result | error}              answer to a command
//   auth_request  {req, kind: "channel"|"user", socket_id, channel_name?}  answered by {"cmd":"auth_response"}
//   state         {previous, current}                    pusher.connection 'state_change'
//   connected     {socket_id}
//   error         {error}                                pusher.connection 'error'
//   closed        {code, reason, wasClean}               the WebSocket transport closed
//   message       {event, channel, data, user_id}        every decoded frame the server sent
//   raw           {frame}                                the frame text as received (after 'connected')
//   event         {channel, event, data}                 channel.bind_global (what app code sees)
//   bound         {channel, event, data, metadata}       channel.bind(event, (data, metadata) => ...)
//   user_event    {event, data}                          pusher.user.bind_global
//   watchlist     {event, data}                          pusher.user.watchlist.bind('online'|'offline')
//
// The Node build of pusher-js ('pusher-js', dist/node) already carries tweetnacl and sets `nacl`, so it
// decrypts private-encrypted- channels; 'pusher-js/with-encryption' is the *web* build (needs `window`).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import Pusher from 'pusher-js';

const require = createRequire(import.meta.url);
const PUSHER_JS_VERSION = JSON.parse(readFileSync(require.resolve('pusher-js/package.json'), 'utf8')).version;

let pusher = null;
let nextAuth = 1;
const pendingAuth = new Map();
const channels = new Map();

function serialise(value) {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === 'function') continue;
      if (v && typeof v === 'object' && v.constructor && !['Object', 'Array', 'Error'].includes(v.constructor.name)
          && !(v instanceof Error)) {
        out[k] = String(v);
      } else {
        out[k] = serialise(v);
      }
    }
    return out;
  }
  if (Array.isArray(value)) return value.map(serialise);
  return value;
}

function report(type, fields = {}) {
  let line;
  try {
    line = JSON.stringify({ t: Date.now(), type, ...serialise(fields) });
  } catch (e) {
    line = JSON.stringify({ t: Date.now(), type, unserialisable: String(e) });
  }
  process.stdout.write(line + '\n');
}

function askPython(kind, params, callback) {
  const req = nextAuth++;
  pendingAuth.set(req, callback);
  report('auth_request', { req, kind, socket_id: params.socketId, channel_name: params.channelName });
}

function hookTransport() {
  // Observe the close code of the WebSocket (pusher-js only surfaces it folded into an 'error').
  const connection = pusher.connection.connection;
  const transport = connection && connection.transport;
  if (!transport || transport.__vaskHooked) return;
  transport.__vaskHooked = true;
  transport.bind('message', (m) => report('raw', { frame: m.data }));
  transport.bind('closed', (ev) => report('closed', {
    code: ev ? ev.code : null, reason: ev ? ev.reason : null, wasClean: ev ? ev.wasClean : null,
  }));
}

function connect(cmd) {
  const options = {
    cluster: '',
    wsHost: cmd.host,
    wsPort: cmd.port,
    wssPort: cmd.port,
    forceTLS: false,
    enabledTransports: ['ws', 'wss'],
    disableStats: true,
    channelAuthorization: {
      customHandler: (params, callback) => askPython('channel', params, callback),
    },
    userAuthentication: {
      customHandler: (params, callback) => askPython('user', params, callback),
    },
    ...(cmd.options || {}),
  };
  pusher = new Pusher(cmd.key, options);
  pusher.connection.bind('state_change', (states) => {
    report('state', { previous: states.previous, current: states.current });
    if (states.current === 'connected') hookTransport();
  });
  pusher.connection.bind('connected', () => report('connected', { socket_id: pusher.connection.socket_id }));
  pusher.connection.bind('error', (error) => report('error', { error }));
  pusher.connection.bind('message', (m) => report('message', {
    event: m.event, channel: m.channel, data: m.data, user_id: m.user_id,
  }));
  pusher.user.bind_global((event, data) => report('user_event', { event, data }));
  for (const name of ['online', 'offline']) {
    pusher.user.watchlist.bind(name, (data) => report('watchlist', { event: name, data }));
  }
  return null;
}

function channelOf(name) {
  const channel = pusher.channel(name);
  if (!channel) throw new Error(`not subscribed to ${name}`);
  return channel;
}

const commands = {
  connect,
  subscribe(cmd) {
    const channel = pusher.subscribe(cmd.channel);
    if (!channels.has(channel)) {
      channels.set(channel, true);
      channel.bind_global((event, data) => report('event', { channel: cmd.channel, event, data }));
    }
    return null;
  },
  unsubscribe(cmd) {
    pusher.unsubscribe(cmd.channel);
    return null;
  },
  bind(cmd) {
    channelOf(cmd.channel).bind(cmd.event, (data, metadata) => report('bound', {
      channel: cmd.channel, event: cmd.event, data, metadata: metadata === undefined ? null : metadata,
    }));
    return null;
  },
  trigger(cmd) {
    // count > 1: a burst, sent synchronously in one turn of the event loop; data gets {..., i}.
    const channel = channelOf(cmd.channel);
    if (!cmd.count) return channel.trigger(cmd.event, cmd.data);
    const results = [];
    for (let i = 0; i < cmd.count; i++) results.push(channel.trigger(cmd.event, { ...cmd.data, i }));
    return results;
  },
  send_event(cmd) {
    return pusher.send_event(cmd.event, cmd.data, cmd.channel);
  },
  signin() {
    pusher.signin();
    return null;
  },
  members(cmd) {
    const members = channelOf(cmd.channel).members;
    const all = {};
    members.each((m) => { all[m.id] = m.info === undefined ? null : m.info; });
    return { count: members.count, me: members.me, members: all, subscribed: channelOf(cmd.channel).subscribed };
  },
  channel_state(cmd) {
    const channel = pusher.channel(cmd.channel);
    if (!channel) return null;
    return {
      subscribed: channel.subscribed, pending: channel.subscriptionPending,
      subscription_count: channel.subscriptionCount === undefined ? null : channel.subscriptionCount,
    };
  },
  state() {
    const current = pusher.connection.connection;
    return { state: pusher.connection.state, socket_id: pusher.connection.socket_id || null,
      user: pusher.user.user_data, transport: current && current.transport ? current.transport.name : null };
  },
  sync() {
    // Round trip through the server: frames on one connection are handled in order, so once the pong
    // is back the server has processed everything this client sent before.
    return new Promise((resolve, reject) => {
      const onMessage = (m) => {
        if (m.event === 'pusher:pong') {
          pusher.connection.unbind('message', onMessage);
          resolve(true);
        }
      };
      pusher.connection.bind('message', onMessage);
      if (!pusher.send_event('pusher:ping', {})) {
        pusher.connection.unbind('message', onMessage);
        reject(new Error(`not connected (state ${pusher.connection.state})`));
      }
    });
  },
  disconnect() {
    pusher.disconnect();
    return null;
  },
  exit() {
    if (pusher) pusher.disconnect();
    setTimeout(() => process.exit(0), 10);
    return null;
  },
  auth_response(cmd) {
    const callback = pendingAuth.get(cmd.req);
    if (!callback) throw new Error(`no pending auth request ${cmd.req}`);
    pendingAuth.delete(cmd.req);
    if (cmd.error) callback(new Error(cmd.error), null);
    else callback(null, cmd.response);
    return null;
  },
};

async function handle(line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    report('reply', { id: null, ok: false, error: `bad JSON: ${e.message}` });
    return;
  }
  const fn = commands[cmd.cmd];
  try {
    if (!fn) throw new Error(`unknown command ${cmd.cmd}`);
    if (cmd.cmd !== 'connect' && cmd.cmd !== 'exit' && !pusher) throw new Error('connect first');
    const result = await fn(cmd);
    if (cmd.id !== undefined) report('reply', { id: cmd.id, ok: true, result: result === undefined ? null : result });
  } catch (e) {
    report('reply', { id: cmd.id === undefined ? null : cmd.id, ok: false, error: String(e && e.message ? e.message : e) });
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => { if (line.trim()) handle(line); });
rl.on('close', () => {
  if (pusher) pusher.disconnect();
  setTimeout(() => process.exit(0), 10);
});
report('ready', { pusher_js: PUSHER_JS_VERSION, node: process.version });
