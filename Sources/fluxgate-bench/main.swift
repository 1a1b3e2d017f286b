// fluxgate-bench: benchmarks that print medians and ratios against a baseline run in the same process.
//
//   swift run -c release fluxgate-bench appends   # durable appends/s: group commit vs one transaction per append
//   swift run -c release fluxgate-bench feed      # events/s pulled through the JSON feed over loopback
//   swift run -c release fluxgate-bench catchup   # events/s one consumer replays over the push channel
//   swift run -c release fluxgate-bench fanout    # deliveries/s and latency, N subscribers, one writer
//   swift run -c release fluxgate-bench postgres  # PostgreSQL appends/s vs plain INSERTs; cross-node latency
//   swift run -c release fluxgate-bench websocket # decode MB/s, echo round trips/s, idle KiB/connection vs NIOWebSocket
//   swift run -c release fluxgate-bench legacy    # the original flux consumer's pattern: a page, then a GET per event
//   swift run -c release fluxgate-bench groups    # consumer groups: events/s by 1, 4, 16 members vs a plain subscription
//   swift run -c release fluxgate-bench sinks     # webhook deliveries/s vs async-http-client alone; append→answer latency vs push
//   swift run -c release fluxgate-bench memory    # the gateway's resident memory under sustained load, and after it
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "appends":
    try await AppendBenchmark.run(arguments: Array(arguments.dropFirst()))
case "feed":
    try await FeedBenchmark.run(arguments: Array(arguments.dropFirst()))
case "fanout":
    try await FanOutBenchmark.run(arguments: Array(arguments.dropFirst()))
case "postgres":
    try await PostgresBenchmark.run(arguments: Array(arguments.dropFirst()))
case "catchup":
    try await CatchUpBenchmark.run(arguments: Array(arguments.dropFirst()))
case "websocket":
    try await WebSocketBenchmark.run(arguments: Array(arguments.dropFirst()))
case "legacy":
    try await LegacyConsumerBenchmark.run(arguments: Array(arguments.dropFirst()))
case "groups":
    try await GroupBenchmark.run(arguments: Array(arguments.dropFirst()))
case "sinks":
    try await SinkBenchmark.run(arguments: Array(arguments.dropFirst()))
case "memory":
    try await MemoryBenchmark.run(arguments: Array(arguments.dropFirst()))
default:
    print("usage: fluxgate-bench appends|feed|catchup|fanout|postgres|websocket|legacy|groups|sinks|memory [options]")
    exit(2)
}
