// Checks fluxgate.js's FluxgateGroupMember in Node (18 or newer; over HTTP pull where there is no WebSocket):
//
//   node node_group_check.mjs FLUXGATE_MJS GATEWAY_URL GROUP EVENTS POISON_TYPE
//
// Handles the group's events, rejecting the first attempt of every event of type POISON_TYPE; exit 0 once EVENTS
// events were acknowledged with each aggregate's events in version order and every poison event handled on a later
// attempt; 1 (with the reason) when not within 30 s or on an error.
const [modulePath, gateway, group_, wanted, poison] = process.argv.slice(2);
const { FluxgateGroupMember } = await import(modulePath);
const fail = (message) => { console.error("node_group_check: FAILED: " + message); process.exit(1); };
const timer = setTimeout(() => fail(`not done in 30 s: ${member.handled} handled`), 30000);
const lastVersion = new Map();
const states = [];
let retried = 0;
const member = new FluxgateGroupMember(gateway, group_, {
  transport: "pull", wait: 1,
  handler: async (event, attempt) => {
    if (event.event_type === poison && attempt === 1) throw new Error("not on the first attempt");
    if (attempt > 1) retried += 1;
    const last = lastVersion.get(event.aggregate_id) ?? -1;
    if (event.aggregate_version !== last + 1) fail(`${event.aggregate_id}: version ${event.aggregate_version} after ${last}`);
    lastVersion.set(event.aggregate_id, event.aggregate_version);
    if (member.handled + 1 >= Number(wanted)) setTimeout(finish, 0);
  },
  onState: (state) => states.push(state),
  onError: (error) => fail(error.message),
});
let finishing = false;
async function finish() {
  if (member.handled < Number(wanted) || finishing) return;
  finishing = true;
  // The last batch's acknowledgement is on its way: done once the group's checkpoint reached the head.
  for (;;) {
    const group = await (await fetch(`${gateway}/groups/${group_}`)).json();
    if (group.lag === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  member.stop();
  clearTimeout(timer);
  console.log(`node_group_check: ok: ${member.handled} events, ${retried} on a later attempt; states ${states}`);
  process.exit(0);
}
member.start();
