import NIOCore

/// Runs a task's jobs on one NIO event loop (a task executor preference, SE-0417).
///
/// A till's request task prefers its connection's event loop: the service code between its awaits runs on the
/// thread that read the frame and writes the answer, instead of hopping to the global pool and back. Under load
/// those hops (two thread wake-ups per request) were the largest share of the server's CPU. The service code is
/// non-blocking (locks held for a few instructions at most), so it may share the loop with the connection's I/O.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
