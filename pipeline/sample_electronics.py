"""Vocabulary of the Electronics-shaped sample profile (``pipeline.sample_profile``).

The taxonomy follows the shape of Amazon's Electronics tree: 12 first-level departments, leaves
2 to 5 levels under "Electronics" (a category path has 3 to 6 names), unequal sizes. A leaf is
a string of the product nouns its titles use, "|"-separated; each noun is one word that
``pipeline.sample_images.key_word`` finds as the title's head noun, so that the rendered image
shows the same word as the title.
"""

from __future__ import annotations

ROOT = "Electronics"
MAIN_CATEGORY = "All Electronics"

TREE: dict = {
    "Accessories & Supplies": {
        "Audio & Video Accessories": {
            "Cables": {
                "HDMI Cables": "Cable|Cord",
                "Audio Cables": "Cable|Adapter",
                "Optical Cables": "Cable",
            },
            "Remote Controls": "Remote|Controller",
            "TV Mounts, Stands & Turntables": {"TV Wall & Ceiling Mounts": "Mount|Bracket"},
            "Cleaning & Repair": "Kit|Cleaner|Wipes",
        },
        "Batteries, Chargers & Accessories": {
            "Batteries": {"AA Batteries": "Batteries", "Coin & Button Cell": "Battery"},
            "Battery Chargers": "Charger",
        },
        "Power Protection": {"Surge Protectors": "Protector|Strip"},
        "Cord Management": "Organizer|Sleeve|Ties",
    },
    "Camera & Photo": {
        "Digital Cameras": {
            "DSLR Cameras": "Camera",
            "Mirrorless Cameras": "Camera",
            "Point & Shoot Digital Cameras": "Camera",
        },
        "Lenses": {"Camera Lenses": {"SLR Camera Lenses": "Lens", "Mirrorless Lenses": "Lens"}},
        "Tripods & Monopods": {"Tripods": "Tripod|Stand", "Monopods": "Monopod"},
        "Lighting & Studio": {"Continuous Output Lighting": "Light|Softbox|Ringlight"},
        "Bags & Cases": {"Camera Cases": "Case|Bag", "Camera Backpacks": "Backpack"},
        "Accessories": {
            "Filters & Accessories": {
                "Lens Filters": {"UV Filters": "Filter", "ND Filters": "Filter"}
            },
            "Batteries & Chargers": "Battery|Charger",
            "Memory Card Accessories": "Reader|Case",
        },
    },
    "Car & Vehicle Electronics": {
        "Car Electronics": {
            "Car Audio": {
                "Car Stereo Receivers": "Receiver|Stereo",
                "Car Amplifiers": "Amplifier",
                "Car Speakers": "Speakers",
            },
            "Car Video": {"Backup Cameras": "Camera", "Dash Cameras": "Dashcam|Camera"},
        },
        "Vehicle Electronics Accessories": {
            "Cell Phone Mounts": "Mount|Holder",
            "Car Chargers": "Charger|Adapter",
        },
    },
    "Cell Phones & Accessories": {
        "Cases, Holsters & Sleeves": {
            "Basic Cases": "Case",
            "Wallet Cases": "Case|Wallet",
            "Flip Cases": "Case",
        },
        "Accessories": {
            "Screen Protectors": "Protector|Film",
            "Chargers & Power Adapters": {
                "Wall Chargers": "Charger|Adapter",
                "Wireless Chargers": "Charger|Pad",
            },
            "Cables": "Cable",
            "Mounts & Stands": {"Stands": "Stand|Holder", "Selfie Sticks": "Stick|Tripod"},
        },
        "Cell Phones": "Smartphone|Phone",
    },
    "Computers & Accessories": {
        "Computer Accessories & Peripherals": {
            "Keyboards, Mice & Accessories": {
                "Keyboards": "Keyboard",
                "Mice": "Mouse|Trackball",
                "Mouse Pads": "Pad|Mousepad",
                "Keyboard & Mouse Combos": "Combo",
            },
            "Laptop Accessories": {
                "Bags, Cases & Sleeves": {"Sleeves": "Sleeve", "Backpacks": "Backpack"},
                "Docking Stations": "Dock|Hub",
                "Laptop Chargers & Power Adapters": "Charger|Adapter",
            },
            "USB Hubs": "Hub|Splitter",
            "Webcams": "Webcam|Camera",
            "Memory Cards": {"Micro SD Cards": "Card", "SD Cards": "Card"},
        },
        "Computer Components": {
            "Internal Components": {
                "Graphics Cards": "Card|GPU",
                "Memory": "RAM|Module",
                "Fans & Cooling": {"Case Fans": "Fan", "CPU Coolers": "Cooler"},
                "Power Supplies": "Supply|PSU",
            }
        },
        "Data Storage": {
            "External Hard Drives": "Drive",
            "Internal Solid State Drives": "SSD|Drive",
            "USB Flash Drives": "Drive|Stick",
        },
        "Monitors": "Monitor|Display",
        "Networking Products": {
            "Routers": "Router",
            "Network Adapters": "Adapter",
            "Repeaters": "Extender|Repeater",
            "Switches": "Switch",
        },
        "Tablet Accessories": {"Cases & Sleeves": "Case|Cover", "Stylus Pens": "Stylus|Pen"},
        "Printers": "Printer",
    },
    "eBook Readers & Accessories": {
        "eBook Readers": "Reader|eReader",
        "Covers": "Cover|Case",
    },
    "GPS, Finance & Office Electronics": {
        "Office Electronics": {"Calculators": "Calculator", "Label Makers": "Labeler|Maker"},
        "GPS Units & Accessories": "Navigator|Tracker",
    },
    "Headphones, Earbuds & Accessories": {
        "Headphones & Earbuds": {
            "Earbud Headphones": "Earbuds|Earphones",
            "Over-Ear Headphones": "Headphones|Headset",
            "On-Ear Headphones": "Headphones",
        },
        "Headphone Accessories": {"Ear Pads": "Earpads|Cushions", "Cases": "Case|Pouch"},
    },
    "Home Audio": {
        "Speakers": {
            "Bookshelf Speakers": "Speakers",
            "Subwoofers": "Subwoofer",
            "Outdoor Speakers": "Speakers",
        },
        "Home Theater": {"Sound Bars": "Soundbar", "Home Theater Systems": "System"},
        "Turntables & Accessories": {"Turntables": "Turntable|Player"},
        "Stereo System Components": {"Amplifiers": "Amplifier|Amp", "Receivers": "Receiver"},
    },
    "Portable Audio & Video": {
        "Portable Speakers & Docks": {"Portable Bluetooth Speakers": "Speaker"},
        "MP3 & MP4 Players": "Player",
        "Radios": "Radio",
        "Microphones": "Microphone|Mic",
    },
    "Security & Surveillance": {
        "Surveillance Cameras": {
            "Dome Cameras": "Camera",
            "Bullet Cameras": "Camera",
            "Hidden Cameras": "Camera|Clock",
        },
        "Surveillance Video Equipment": "Recorder|NVR",
    },
    "Television & Video": {
        "Televisions": "TV|Television",
        "Projectors": "Projector",
        "Streaming Media Players": "Streamer|Stick",
        "Blu-ray Players & Recorders": "Player",
        "Antennas": "Antenna",
    },
    "Wearable Technology": {
        "Smartwatches": "Smartwatch|Watch",
        "Activity & Fitness Trackers": "Tracker|Band",
        "Virtual Reality": "Headset|Goggles",
    },
}

ADJECTIVES = (
    "Wireless",
    "Portable",
    "Compact",
    "Ultra Slim",
    "Heavy Duty",
    "Premium",
    "Waterproof",
    "Rechargeable",
    "Fast Charging",
    "Ergonomic",
    "Universal",
    "Adjustable",
    "Lightweight",
    "High Speed",
    "Noise Cancelling",
    "Magnetic",
    "Bluetooth 5.3",
    "USB-C",
    "4K HD",
    "Upgraded",
    "Professional",
    "Dual Band",
    "Shockproof",
    "Foldable",
)
USES = (
    "for Home and Office",
    "for iPhone, Samsung Galaxy and Android",
    "for Laptop, PC and Mac",
    "for Travel",
    "for Gaming",
    "for Kids and Adults",
    "for Outdoor Use",
    "for Car and Truck",
    "for TV and Projector",
    "for Students",
)
FEATURE_PHRASES = (
    "Long Battery Life",
    "Plug and Play",
    "2-Year Warranty",
    "Easy Setup",
    "Premium Build Quality",
    "Low Latency",
    "Energy Efficient",
    "Overheat Protection",
    "Tool-Free Installation",
    "Anti-Slip Design",
    "Scratch Resistant",
    "Child Safe",
)
COLORS = ("Black", "White", "Silver", "Space Gray", "Blue", "Red", "Rose Gold", "Green")
BRAND_SYLLABLES = (
    "an ker lo gi tech sam son ix ra vo zen tro ny bel kin ul tra mo via pix el nor da ke "
    "ta ro fi lu ma qu op ti vex ar go sy ne xo"
).split()
FEATURE_LINES = (
    "[{adj}] Built for everyday use with a {adj_l} design that fits any setup.",
    "[COMPATIBILITY] Works with most devices {use_l}; no extra software or drivers needed.",
    "[WHAT YOU GET] 1 x {noun}, 1 x user manual, our worry-free 24-month warranty and "
    "friendly customer service.",
    "[DURABLE] Made from high quality materials and tested for more than 10,000 cycles, so it "
    "keeps working day after day.",
    "[EASY TO USE] Set it up in minutes: unbox, connect and enjoy. The {noun_l} stays in place "
    "and does not slip.",
    "[SAFE] Certified protection against over-current, over-voltage, short circuit and "
    "overheating keeps your devices safe.",
    "[{feature}] Designed by {brand} engineers for people who want {feature_l} without paying "
    "more.",
)
DESCRIPTION_LINES = (
    "{brand} makes {leaf_l} for people who care about quality. This {noun_l} combines a "
    "{adj_l} design with reliable performance.",
    "Whether you are at home, in the office or on the road, the {brand} {noun_l} is ready when "
    "you are. Package includes everything you need to get started.",
    "Product description: {title}. Please check the size and compatibility before you buy. If "
    "you have any question, contact us and we will reply within 24 hours.",
)
# Review sentences by sentiment (rating 4-5, 3, 1-2); JSON-safe text (quotes escaped).
REVIEW_SENTENCES = {
    "good": (
        "This {noun} works great and does exactly what I needed.",
        "Very happy with this {adj} {noun}, it feels solid and well made.",
        "Setup took less than five minutes.",
        "I bought it for my husband and he uses it every day.",
        "Great value for the money, I would buy it again.",
        "The {noun} arrived quickly and was well packaged.",
        "It does what it says on the box, no complaints.",
        "I have had it for three months now and it still works like new.",
        "Much better than the one that came with my old set.",
        "Highly recommend if you are looking for a {adj} {noun}.",
        "Battery life is better than expected.",
        "My only wish is that it came in more colors.",
        "It is a little smaller than I thought, but that turned out to be a plus.",
        'Five stars, \\"just works\\" as promised.<br />',
        "Compared with the more expensive brands, I honestly cannot tell the difference.",
        "Fits perfectly and looks good on my desk.",
    ),
    "mixed": (
        "The {noun} is okay for the price but nothing special.",
        "It works, although the build feels a bit cheap.",
        "Instructions were confusing and I had to look online.",
        "It does the job, but I expected better quality from {adj} gear.",
        "After a few weeks one of the buttons started to stick.",
        "Decent, but the cable is shorter than I would like.",
        "Not bad, not great.<br />",
        "I might return it if I find something better.",
    ),
    "bad": (
        "Stopped working after two weeks.",
        "This {noun} is junk, do not waste your money.",
        "It arrived broken and the seller never answered my messages.",
        "Does not work with my device even though the listing says it does.",
        "Returned it the same day, the quality is terrible.",
        "The picture on the listing is misleading.",
        "Very disappointed, I expected much more.",
        "It gets hot and smells like burning plastic.",
    ),
}
REVIEW_TITLES = {
    "good": (
        "Five Stars",
        "Great product",
        "Works great",
        "Love it!",
        "Exactly as described",
        "Excellent value",
        "Highly recommend",
        "Does the job",
        "Perfect",
        "Very happy",
    ),
    "mixed": ("Three Stars", "It's ok", "Decent for the price", "Could be better", "Meh"),
    "bad": ("One Star", "Junk", "Stopped working", "Don't buy", "Disappointed", "Returned it"),
}
