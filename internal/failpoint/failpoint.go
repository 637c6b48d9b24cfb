package failpoint

// EnvVar selects the step to crash at.
const EnvVar = "MOORING_FAILPOINT"
