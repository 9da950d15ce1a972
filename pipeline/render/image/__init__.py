"""Still images: the ladder of sizes, encoders, embedded metadata, the isolated render child."""
