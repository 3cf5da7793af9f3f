import Foundation

/// CPU time (user + system) of this process and of the server, sampled at the start and end of the measured
/// window, so each run can say what 1,000 requests cost on each side of the socket: the load generator shares the
/// machine with what it measures.
struct CPUTime {
    /// This process, from getrusage.
    static func ownSeconds() -> Double {
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1_000_000 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Another process, from /proc/<pid>/stat (utime and stime, fields 14 and 15, in clock ticks). Nil when it
    /// cannot be read.
    static func processSeconds(_ pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm)" the fields start at 3 (state); utime is field 14, i.e. index 11 here.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ticks > 0 ? (user + system) / ticks : nil
    }
}
