import Synchronization

/// A bounded number of live subscriptions (WebSocket and SSE together). A subscription takes a slot at its
/// handshake and gives it back when it ends; when none is free the WebSocket is closed with 1013 and SSE gets 503.
final class SubscriptionSlots: Sendable {
    /// One taken slot; `release()` gives it back (once, whoever calls it; also when the slot is deallocated).
    final class Slot: Sendable {
        private let slots: SubscriptionSlots
        private let released = Atomic<Bool>(false)

        fileprivate init(_ slots: SubscriptionSlots) { self.slots = slots }

        func release() {
            if !released.exchange(true, ordering: .acquiringAndReleasing) {
                slots.taken.subtract(1, ordering: .relaxed)
            }
        }

        deinit { release() }
    }

    /// `nil`: no limit (connections still are).
    let maximum: Int?
    private let taken = Atomic<Int>(0)

    init(maximum: Int?) { self.maximum = maximum }

    /// Subscriptions open now.
    var count: Int { taken.load(ordering: .relaxed) }

    /// A slot, or `nil` when all are taken.
    func take() -> Slot? {
        let now = taken.add(1, ordering: .relaxed).newValue
        if let maximum, now > maximum {
            taken.subtract(1, ordering: .relaxed)
            return nil
        }
        return Slot(self)
    }
}
