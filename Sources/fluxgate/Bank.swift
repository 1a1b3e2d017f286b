import FluxCore

// The original flux framework's bank example, on Fluxgate aggregates. The event type names and payload
// fields are the original's, so its Go read models can decode these events from the feed.

struct AccountCreated: DomainEvent {
    static let eventType = "account.AccountCreated"
    var accountID: String
    var balance: Int

    enum CodingKeys: String, CodingKey {
        case accountID = "account_id", balance
    }
}

struct AccountCredited: DomainEvent {
    static let eventType = "account.AccountCredited"
    var accountID: String
    var transactionID: String
    var amount: Int

    enum CodingKeys: String, CodingKey {
        case accountID = "account_id", transactionID = "transaction_id", amount
    }
}

struct AccountDebited: DomainEvent {
    static let eventType = "account.AccountDebited"
    var accountID: String
    var transactionID: String
    var amount: Int

    enum CodingKeys: String, CodingKey {
        case accountID = "account_id", transactionID = "transaction_id", amount
    }
}

/// A bank account: created once, then credited and debited; never overdrawn.
struct Account: Aggregate {
    enum CommandError: Error, CustomStringConvertible {
        case alreadyExists(String), notOpen(String), insufficientFunds(account: String, balance: Int, amount: Int), invalidAmount(Int)

        var description: String {
            switch self {
            case .alreadyExists(let id): return "account \(id) already exists"
            case .notOpen(let id): return "account \(id) is not open"
            case .insufficientFunds(let account, let balance, let amount): return "account \(account) has \(balance), cannot debit \(amount)"
            case .invalidAmount(let amount): return "amount must be positive, got \(amount)"
            }
        }
    }

    static let aggregateName = "Account"
    static let eventTypes: [any DomainEvent.Type] = [AccountCreated.self, AccountCredited.self, AccountDebited.self]

    let id: String
    var isOpen = false
    var balance = 0

    init(id: String) { self.id = id }

    mutating func apply(_ event: any DomainEvent) {
        switch event {
        case let created as AccountCreated:
            isOpen = true
            balance = created.balance
        case let credited as AccountCredited:
            balance += credited.amount
        case let debited as AccountDebited:
            balance -= debited.amount
        default:
            break
        }
    }

    func create(balance: Int) throws -> [any DomainEvent] {
        guard !isOpen else { throw CommandError.alreadyExists(id) }
        return [AccountCreated(accountID: id, balance: balance)]
    }

    func credit(_ amount: Int, transaction: String) throws -> [any DomainEvent] {
        guard isOpen else { throw CommandError.notOpen(id) }
        guard amount > 0 else { throw CommandError.invalidAmount(amount) }
        return [AccountCredited(accountID: id, transactionID: transaction, amount: amount)]
    }

    func debit(_ amount: Int, transaction: String) throws -> [any DomainEvent] {
        guard isOpen else { throw CommandError.notOpen(id) }
        guard amount > 0 else { throw CommandError.invalidAmount(amount) }
        guard balance >= amount else { throw CommandError.insufficientFunds(account: id, balance: balance, amount: amount) }
        return [AccountDebited(accountID: id, transactionID: transaction, amount: amount)]
    }
}
