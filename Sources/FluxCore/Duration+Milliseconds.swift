extension Duration {
    /// The duration in whole milliseconds (rounded toward zero), saturating at `Int64`'s range: what the stores keep
    /// and what `scheduleTask(in: .milliseconds(…))` takes.
    public var wholeMilliseconds: Int64 {
        let (seconds, overflow) = components.seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return components.seconds < 0 ? .min : .max }
        let (total, sumOverflow) = seconds.addingReportingOverflow(components.attoseconds / 1_000_000_000_000_000)
        if sumOverflow { return seconds < 0 ? .min : .max }
        return total
    }
}
