/// A map from string keys to values bounded by accounted bytes, evicting with CLOCK (second chance).
///
/// Guarantees:
/// - `bytes` (the sum of the accounted bytes of the entries held) never exceeds `capacityBytes`; an entry larger
///   than the whole capacity is refused.
/// - Every operation is O(1), eviction amortised O(1): a read only sets the entry's reference bit (no list to
///   reorder, so reads do not move memory), and the hand clears each bit at most once per turn before it evicts.
/// - An entry read since the hand last passed it survives one more turn; a new entry starts unreferenced, so a scan
///   of keys read once (a flood of distinct lookups) evicts other once-read keys first, not the working set.
///
/// Accounting: an entry costs its key's UTF-8 bytes, the value bytes its caller states, and
/// `entryOverheadBytes` for the slot, the dictionary entry and the string and value headers. It is an estimate of
/// the heap the entry keeps alive, not a measurement; the bound is on this estimate.
///
/// Not thread-safe: `LocalMemberCache` keeps it inside a mutex.
struct ClockCache<Value> {
    /// Estimated bytes of bookkeeping per entry beyond key and value (slot, dictionary bucket, headers).
    static var entryOverheadBytes: Int { 96 }

    private struct Slot {
        var key: String
        var value: Value
        var bytes: Int
        var referenced: Bool
    }

    let capacityBytes: Int
    private(set) var bytes = 0
    private var slots: [Slot?] = []
    private var positions: [String: Int] = [:]
    private var freeSlots: [Int] = []
    private var hand = 0
    /// Entries evicted to make room since the cache was made.
    private(set) var evictions = 0

    init(capacityBytes: Int) {
        precondition(capacityBytes >= 0)
        self.capacityBytes = capacityBytes
    }

    var count: Int { positions.count }

    /// The bytes an entry of this key and value size is accounted.
    static func accountedBytes(key: String, valueBytes: Int) -> Int {
        key.utf8.count + valueBytes + entryOverheadBytes
    }

    /// The value, marking the entry as recently used.
    mutating func value(forKey key: String) -> Value? {
        guard let position = positions[key] else { return nil }
        slots[position]!.referenced = true
        return slots[position]!.value
    }

    /// The value without marking it used.
    func peek(_ key: String) -> Value? {
        positions[key].map { slots[$0]!.value }
    }

    /// Stores or replaces the value of `key`, evicting unreferenced entries until it fits. Returns false (and
    /// stores nothing, removing an older value of the key) when the entry alone is larger than the capacity.
    @discardableResult
    mutating func insert(_ value: Value, forKey key: String, valueBytes: Int) -> Bool {
        let entryBytes = Self.accountedBytes(key: key, valueBytes: valueBytes)
        guard entryBytes <= capacityBytes else {
            remove(key)
            return false
        }
        if let position = positions[key] {
            // Replaced in place: it keeps its slot and its reference bit, and only the difference is accounted.
            bytes -= slots[position]!.bytes
            slots[position]!.value = value
            slots[position]!.bytes = entryBytes
            while bytes + entryBytes > capacityBytes { evictOne(sparing: position) }
            bytes += entryBytes
            return true
        }
        while bytes + entryBytes > capacityBytes { evictOne(sparing: nil) }
        let slot = Slot(key: key, value: value, bytes: entryBytes, referenced: false)
        let position: Int
        if let free = freeSlots.popLast() {
            slots[free] = slot
            position = free
        } else {
            slots.append(slot)
            position = slots.count - 1
        }
        positions[key] = position
        bytes += entryBytes
        return true
    }

    @discardableResult
    mutating func remove(_ key: String) -> Bool {
        guard let position = positions.removeValue(forKey: key) else { return false }
        bytes -= slots[position]!.bytes
        slots[position] = nil
        freeSlots.append(position)
        if positions.isEmpty { removeAll() }
        return true
    }

    mutating func removeAll() {
        slots = []
        positions = [:]
        freeSlots = []
        hand = 0
        bytes = 0
    }

    /// Advances the hand to the first unreferenced entry (clearing the bits it passes) and evicts it. `sparing`: a
    /// slot that must stay (the one being replaced). Terminates: within two turns every other bit is clear.
    private mutating func evictOne(sparing: Int?) {
        precondition(positions.count > (sparing == nil ? 0 : 1), "nothing left to evict")
        while true {
            if hand >= slots.count { hand = 0 }
            let position = hand
            hand += 1
            guard position != sparing, let slot = slots[position] else { continue }
            if slot.referenced {
                slots[position]!.referenced = false
                continue
            }
            positions.removeValue(forKey: slot.key)
            bytes -= slot.bytes
            slots[position] = nil
            freeSlots.append(position)
            evictions += 1
            return
        }
    }
}
