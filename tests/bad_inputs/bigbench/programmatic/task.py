# a programmatic BIG-bench task: alignlab refuses to run its code
