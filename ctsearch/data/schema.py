"""CT-RATE names as data: the 18 abnormalities, CSV columns, plausibility limits of a CT."""

PATHOLOGIES: tuple[str, ...] = (
    "Medical material",
    "Arterial wall calcification",
    "Cardiomegaly",
    "Pericardial effusion",
    "Coronary artery wall calcification",
    "Hiatal hernia",
    "Lymphadenopathy",
    "Emphysema",
    "Atelectasis",
    "Lung nodule",
    "Lung opacity",
    "Pulmonary fibrotic sequela",
    "Pleural effusion",
    "Mosaic attenuation pattern",
    "Peribronchial thickening",
    "Consolidation",
    "Bronchiectasis",
    "Interlobular septal thickening",
)

# Key column of every CT-RATE CSV; older releases spelled it AccessionNo.
KEY = "VolumeName"
KEY_ALIASES: tuple[str, ...] = ("VolumeName", "AccessionNo")

REPORT_COLUMNS: tuple[str, ...] = (
    "VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN", "Impressions_EN",
)
REPORT_MISSING = "Not given."

METADATA_COLUMNS: tuple[str, ...] = (
    "VolumeName", "Manufacturer", "SeriesDescription", "ManufacturerModelName", "PatientSex",
    "PatientAge", "ReconstructionDiameter", "DistanceSourceToDetector", "DistanceSourceToPatient",
    "GantryDetectorTilt", "TableHeight", "RotationDirection", "ExposureTime", "XRayTubeCurrent",
    "Exposure", "FilterType", "GeneratorPower", "FocalSpots", "ConvolutionKernel",
    "PatientPosition", "RevolutionTime", "SingleCollimationWidth", "TotalCollimationWidth",
    "TableSpeed", "TableFeedPerRotation", "SpiralPitchFactor", "DataCollectionCenterPatient",
    "ReconstructionTargetCenterPatient", "ExposureModulationType", "CTDIvol",
    "ImagePositionPatient", "ImageOrientationPatient", "SliceLocation", "SamplesPerPixel",
    "PhotometricInterpretation", "Rows", "Columns", "XYSpacing", "RescaleIntercept",
    "RescaleSlope", "RescaleType", "NumberofSlices", "ZSpacing", "StudyDate",
)

# Folder / file names of a CT-RATE download (relative to dataset/).
SPLIT_DIRS = {"train": "train", "valid": "valid", "train_fixed": "train", "valid_fixed": "valid"}
REPORT_FILES = {"train": "train_reports.csv", "valid": "validation_reports.csv"}
LABEL_FILES = {"train": "train_predicted_labels.csv", "valid": "valid_predicted_labels.csv"}
METADATA_FILES = {"train": "train_metadata.csv", "valid": "validation_metadata.csv"}
REPORTS_DIR = "radiology_text_reports"
LABELS_DIR = "multi_abnormality_labels"
METADATA_DIR = "metadata"

# Plausibility limits of a CT (README "Reliability"), applied by the readers.
SPACING_MM = (0.05, 30.0)   # every voxel size, from a header or the metadata, lies in this range
MAX_VOXELS = 2**29          # 512 x 512 x 2048; larger headers are refused before allocating
MAX_AGE_YEARS = 130         # PatientAge above it is read as unknown (null) with a warning
