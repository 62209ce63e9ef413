# The shared fixtures (spark, synthetic_config, test_environment, tiny_release) come from
# the datafirst_spark.testing pytest plugin, registered by the package's entry point.
