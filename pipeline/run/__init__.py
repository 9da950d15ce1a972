"""Running a story: one asset end to end, job records, the raw cache, the executors."""
