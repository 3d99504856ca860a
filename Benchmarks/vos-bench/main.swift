// Entry point of vos-bench (a main.swift rather than @main, so the target may hold other files).
VOSBench.main()
