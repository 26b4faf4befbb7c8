"""The dataset key tests prepare datasets with (`config.settings.test` defaults to the same)."""

TEST_DATASET_KEY = "test-only-dataset-key-never-use-in-production"
OTHER_DATASET_KEY = "another-test-only-dataset-key-for-comparisons"
