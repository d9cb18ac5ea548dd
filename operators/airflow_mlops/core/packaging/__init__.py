"""A serving image per model version: build context, requirements, wheel, image build."""
