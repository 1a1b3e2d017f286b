// Checks fluxgate.js in Node (18 or newer: fetch and TextDecoderStream are built in; WebSocket only from 22, so
// older ones subscribe over server-sent events), used as the README says: the module saved as fluxgate.mjs.
//
//   node node_check.mjs FLUXGATE_MJS GATEWAY_URL EVENTS [TOKEN]
//
// Subscribes from position 0 and waits for EVENTS events and caught_up; exit 0 when they came once each, in
// order, 1 (with the reason) when not within 30 s or on an error.
const [modulePath, gateway, wanted, token] = process.argv.slice(2);
const { FluxgateSubscription } = await import(modulePath);
const positions = [];
const states = [];
let caughtUp = null;
const fail = (message) => { console.error("node_check: FAILED: " + message); process.exit(1); };
const timer = setTimeout(() => fail(`not done in 30 s: positions ${positions}, states ${states}, caught up ${caughtUp}`), 30000);
const subscription = new FluxgateSubscription(gateway, {
  accessToken: token || undefined,
  onEvent: (event) => {
    positions.push(event.position);
    if (typeof event.payload !== "object") fail("an event without its payload: " + JSON.stringify(event));
    finishWhenDone();
  },
  onCaughtUp: (head) => { caughtUp = head; finishWhenDone(); },
  onState: (state) => states.push(state),
  onError: (error) => fail(error.message),
});
function finishWhenDone() {
  if (positions.length < Number(wanted) || caughtUp === null) return;
  subscription.stop();
  clearTimeout(timer);
  const expected = Array.from({ length: Number(wanted) }, (_, index) => index + 1);
  if (JSON.stringify(positions) !== JSON.stringify(expected)) fail(`positions ${positions}, wanted ${expected}`);
  console.log(`node_check: ok: ${positions.length} events over ${subscription.transport}, caught up at ${caughtUp}; states ${states}`);
  process.exit(0);
}
subscription.start();
