"""The Machine Learning Lens's 78 best practices: id, pillar and title, as the lens states them.

The Well-Architected Machine Learning Lens (2021) numbers its practices per pillar (MLOE-01 ...
MLCOST-22). The list is part of the package, not read from a document at run time, so
``driftloop lens check`` works in any checkout; a test compares it with the project's copy of the
lens when that copy is present.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Pillar of each id prefix, in the lens's order.
PILLARS: dict[str, str] = {
    "MLOE": "Operational excellence",
    "MLSEC": "Security",
    "MLREL": "Reliability",
    "MLPER": "Performance efficiency",
    "MLCOST": "Cost optimization",
}


@dataclass(frozen=True)
class Practice:
    """One best practice of the lens."""

    id: str
    title: str

    @property
    def prefix(self) -> str:
        """``MLOE`` of ``MLOE-04``."""
        return self.id.split("-")[0]

    @property
    def pillar(self) -> str:
        return PILLARS[self.prefix]


PRACTICES: tuple[Practice, ...] = (
    Practice("MLOE-01", "Develop right skills with accountability and empowerment"),
    Practice("MLOE-02", "Establish ML roles and responsibilities"),
    Practice("MLOE-03", "Prepare an ML profile template"),
    Practice("MLOE-04", "Establish model improvement strategies"),
    Practice("MLOE-05", "Establish a lineage tracker system"),
    Practice("MLOE-06", "Establish feedback loops across ML lifecycle phases"),
    Practice("MLOE-07", "Profile data to improve quality"),
    Practice("MLOE-08", "Document data processing"),
    Practice("MLOE-09", "Automate operations through IaC and CaC"),
    Practice("MLOE-10", "Establish scalable patterns to access approved public libraries"),
    Practice("MLOE-11", "Establish deployment environment metrics"),
    Practice("MLOE-12", "Enable monitoring health of model endpoint"),
    Practice(
        "MLOE-13",
        "Synchronize architecture and configuration, and check for skew across environments",
    ),
    Practice("MLSEC-01", "Validate ML software privacy and license terms"),
    Practice("MLSEC-02", "Ensure least privilege access"),
    Practice("MLSEC-03", "Secure data and modeling environment"),
    Practice("MLSEC-04", "Protect sensitive data privacy"),
    Practice("MLSEC-05", "Enforce data lineage"),
    Practice("MLSEC-06", "Keep only relevant data"),
    Practice("MLSEC-07", "Detect transfer learning risk"),
    Practice("MLSEC-08", "Secure governed ML environment"),
    Practice("MLSEC-09", "Secure inter-node cluster communications"),
    Practice("MLSEC-10", "Protect against data poisoning threats"),
    Practice("MLSEC-11", "Protect against adversarial and malicious activities"),
    Practice("MLSEC-12", "Restrict access to intended legitimate consumers"),
    Practice("MLSEC-13", "Monitor human interactions with data for anomalous activity"),
    Practice("MLREL-01", "Discuss and agree on the level of model explainability"),
    Practice("MLREL-02", "Use APIs to abstract change from model consuming applications"),
    Practice("MLREL-03", "Adopt a machine learning microservice strategy"),
    Practice("MLREL-04", "Use a data catalog"),
    Practice("MLREL-05", "Use a data pipeline"),
    Practice("MLREL-06", "Automate managing data changes"),
    Practice("MLREL-07", "Enable CI/CD/CT automation with traceability"),
    Practice("MLREL-08", "Ensure feature consistency across training and inference"),
    Practice("MLREL-09", "Ensure model validation with relevant data"),
    Practice("MLREL-10", "Automate endpoint changes through a pipeline"),
    Practice("MLREL-11", "Use an appropriate deployment and testing strategy"),
    Practice("MLREL-12", "Allow automatic scaling of the model endpoint"),
    Practice("MLREL-13", "Ensure a recoverable endpoint with a managed version control strategy"),
    Practice("MLPER-01", "Determine key performance indicators, including acceptable errors"),
    Practice("MLPER-02", "Understand and manage the available services and resources"),
    Practice("MLPER-03", "Review fairness and explainability"),
    Practice("MLPER-04", "Define relevant evaluation metrics"),
    Practice("MLPER-05", "Use a data lake house architecture"),
    Practice("MLPER-06", "Optimize training and inference instance types"),
    Practice("MLPER-07", "Explore alternatives for performance improvement"),
    Practice("MLPER-08", "Establish a model performance evaluation pipeline"),
    Practice("MLPER-09", "Establish feature statistics"),
    Practice("MLPER-10", "Perform a performance trade-off analysis"),
    Practice("MLPER-11", "Evaluate machine learning deployment option (cloud versus edge)"),
    Practice("MLPER-12", "Evaluate model explainability"),
    Practice("MLPER-13", "Evaluate data drift"),
    Practice("MLPER-14", "Monitor, detect, and handle model performance degradation"),
    Practice("MLPER-15", "Establish an automated re-training framework"),
    Practice("MLPER-16", "Review for updated features"),
    Practice("MLPER-17", "Include human-in-the-loop monitoring"),
    Practice("MLCOST-01", "Define overall return on investment (ROI) and opportunity cost"),
    Practice("MLCOST-02", "Use managed services to reduce total cost of ownership (TCO)"),
    Practice("MLCOST-03", "Identify if machine learning is the right solution"),
    Practice("MLCOST-04", "Enable data and compute proximity"),
    Practice("MLCOST-05", "Select optimal algorithms"),
    Practice("MLCOST-06", "Tradeoff analysis on custom versus pre-trained models"),
    Practice("MLCOST-07", "Enable debugging and logging"),
    Practice("MLCOST-08", "Use managed data labeling"),
    Practice("MLCOST-09", "Use data wrangler tools for interactive analysis"),
    Practice("MLCOST-10", "Enable feature reusability"),
    Practice("MLCOST-11", "Establish data bias detection and mitigation"),
    Practice("MLCOST-12", "Select optimal computing instance size"),
    Practice("MLCOST-13", "Select local training for small scale experiments"),
    Practice("MLCOST-14", "Select an optimal ML framework"),
    Practice("MLCOST-15", "Use automated machine learning"),
    Practice("MLCOST-16", "Use distributed training"),
    Practice("MLCOST-17", "Stop resources when not in use"),
    Practice("MLCOST-18", "Start training with small datasets"),
    Practice("MLCOST-19", "Use warm-start and checkpointing hyperparameter tuning"),
    Practice("MLCOST-20", "Use hyperparameter optimization technologies"),
    Practice("MLCOST-21", "Use an inference pipeline"),
    Practice("MLCOST-22", "Monitor usage and cost by ML activity"),
)

#: Practice by id.
BY_ID: dict[str, Practice] = {p.id: p for p in PRACTICES}
