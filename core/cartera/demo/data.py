"""Reference data for the demo portfolio: names, places and payment habits per country.

Everything here is plain data; :mod:`cartera.demo.generator` draws from it with a seeded RNG.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """A zone (city or metro area) with its ISO 3166-2 subdivision and phone prefixes."""

    zone: str
    subdivision: str
    mobile_prefixes: tuple[str, ...]
    """E.164 prefixes (after ``+``) of mobile numbers; the rest is random digits."""
    mobile_length: int
    """Total digits after ``+`` (country code included)."""
    districts: tuple[str, ...]
    streets: tuple[str, ...]
    weight: int


@dataclass(frozen=True)
class Country:
    code: str
    currency: str
    weight: int
    female: tuple[str, ...]
    male: tuple[str, ...]
    surnames: tuple[str, ...]
    places: tuple[Place, ...]
    company_suffixes: tuple[str, ...]
    email_domains: tuple[str, ...]
    payment_methods: tuple[str, ...]
    scale: float
    """Typical consumer debt in major units of the local currency."""


_COMPANY_WORDS = (
    "Inversiones", "Comercial", "Distribuidora", "Servicios", "Constructora", "Transportes",
    "Grupo", "Importadora", "Agroindustrial", "Textil", "Ferretería", "Panificadora",
    "Consultores", "Logística", "Farmacéutica", "Metalmecánica",
)
_COMPANY_NAMES = (
    "Andina", "del Pacífico", "Los Álamos", "San Martín", "El Sol", "Santa Rosa", "Horizonte",
    "Nueva Esperanza", "Del Sur", "La Cumbre", "Cóndor", "Los Andes", "Real", "Continental",
    "San José", "Las Palmeras", "Amazonas", "Aurora", "Alianza", "Mirador",
)

COUNTRIES: tuple[Country, ...] = (
    Country(
        code="PE", currency="PEN", weight=40,
        female=("María", "Rosa", "Carmen", "Ana", "Luz", "Juana", "Milagros", "Jessica",
                "Fiorella", "Gabriela", "Karina", "Yolanda", "Flor", "Lucía", "Sofía",
                "Valeria", "Camila", "Elizabeth", "Diana", "Patricia"),
        male=("José", "Luis", "Juan", "Carlos", "Jorge", "Miguel", "César", "Víctor", "Manuel",
              "Alberto", "Percy", "Wilmer", "Edwin", "Renzo", "Diego", "Jhon", "Raúl", "Pedro",
              "Christian", "Fernando"),
        surnames=("Quispe", "Flores", "Sánchez", "Rodríguez", "García", "Huamán", "Mamani",
                  "Rojas", "Chávez", "Vásquez", "Ramírez", "Torres", "Mendoza", "Castillo",
                  "Díaz", "Espinoza", "Gutiérrez", "Vargas", "Condori", "Ramos", "Cruz",
                  "Salazar", "Huanca", "Ccahuana", "Paredes", "Alvarado", "Pérez", "Zapata",
                  "Cárdenas", "Palomino"),
        places=(
            Place("Lima", "PE-LMA", ("519",), 11,
                  ("San Juan de Lurigancho", "Comas", "Los Olivos", "Miraflores", "Surco",
                   "San Martín de Porres", "Ate", "Villa El Salvador", "La Victoria"),
                  ("Av. Javier Prado Este", "Av. Arequipa", "Jr. de la Unión", "Av. Brasil",
                   "Av. Túpac Amaru", "Calle Las Begonias", "Av. Próceres de la Independencia"),
                  60),
            Place("Callao", "PE-CAL", ("519",), 11,
                  ("Bellavista", "La Perla", "Ventanilla", "Carmen de la Legua"),
                  ("Av. Sáenz Peña", "Av. Colonial", "Av. La Marina", "Jr. Paz Soldán"), 20),
            Place("Arequipa", "PE-ARE", ("519",), 11,
                  ("Cercado", "Cayma", "Yanahuara", "Paucarpata", "Cerro Colorado"),
                  ("Calle Mercaderes", "Av. Ejército", "Av. Dolores", "Calle San Juan de Dios"),
                  20),
        ),
        company_suffixes=("S.A.C.", "S.A.", "E.I.R.L.", "S.R.L."),
        email_domains=("gmail.com", "hotmail.com", "outlook.com", "yahoo.es", "gmail.com"),
        payment_methods=("transferencia", "yape", "agente", "plin", "ventanilla"),
        scale=2_500.0,
    ),
    Country(
        code="MX", currency="MXN", weight=25,
        female=("María Guadalupe", "Guadalupe", "Juana", "Margarita", "Verónica", "Leticia",
                "Alejandra", "Fernanda", "Ximena", "Daniela", "Mariana", "Adriana", "Claudia",
                "Rosa María", "Patricia", "Itzel", "Brenda", "Karla", "Norma", "Silvia"),
        male=("José Luis", "Juan", "Francisco", "Jesús", "Alejandro", "Miguel Ángel", "Jorge",
              "Eduardo", "Fernando", "Ricardo", "Arturo", "Roberto", "Javier", "Salvador",
              "Héctor", "Rafael", "Emiliano", "Santiago", "Diego", "Armando"),
        surnames=("Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez",
                  "Sánchez", "Ramírez", "Cruz", "Flores", "Gómez", "Morales", "Vázquez",
                  "Reyes", "Jiménez", "Torres", "Díaz", "Gutiérrez", "Ruiz", "Mendoza",
                  "Aguilar", "Ortiz", "Moreno", "Castillo", "Romero", "Álvarez", "Chávez",
                  "Rivera", "Juárez"),
        places=(
            Place("CDMX", "MX-CMX", ("5255", "5256"), 12,
                  ("Iztapalapa", "Gustavo A. Madero", "Coyoacán", "Benito Juárez",
                   "Cuauhtémoc", "Tlalpan", "Álvaro Obregón"),
                  ("Av. Insurgentes Sur", "Calz. de Tlalpan", "Av. Revolución",
                   "Eje Central Lázaro Cárdenas", "Av. Universidad", "Calle Durango"), 50),
            Place("Guadalajara", "MX-JAL", ("5233",), 12,
                  ("Zapopan", "Tlaquepaque", "Tonalá", "Centro", "Providencia"),
                  ("Av. Vallarta", "Av. Chapultepec", "Av. López Mateos", "Calle Morelos"),
                  25),
            Place("Monterrey", "MX-NLE", ("5281",), 12,
                  ("San Nicolás de los Garza", "Guadalupe", "Apodaca", "San Pedro Garza García",
                   "Centro"),
                  ("Av. Constitución", "Av. Garza Sada", "Av. Gonzalitos", "Calle Padre Mier"),
                  25),
        ),
        company_suffixes=("S.A. de C.V.", "S. de R.L. de C.V.", "S.A.P.I. de C.V."),
        email_domains=("gmail.com", "hotmail.com", "outlook.com", "yahoo.com.mx", "live.com.mx"),
        payment_methods=("spei", "oxxo", "tarjeta", "domiciliacion"),
        scale=12_000.0,
    ),
    Country(
        code="CO", currency="COP", weight=20,
        female=("María Fernanda", "Luz Marina", "Diana", "Paola", "Andrea", "Sandra",
                "Claudia", "Natalia", "Valentina", "Juliana", "Catalina", "Marcela", "Lina",
                "Yolanda", "Gloria", "Sara", "Isabella", "Mónica", "Angélica", "Luisa"),
        male=("Juan Carlos", "Luis Fernando", "Andrés", "Carlos Andrés", "Jhon Jairo",
              "Diego", "Óscar", "Julián", "Sebastián", "Santiago", "Felipe", "Camilo",
              "Alejandro", "Jaime", "Hernán", "Fabio", "William", "Mauricio", "Édgar",
              "Gustavo"),
        surnames=("Rodríguez", "Gómez", "González", "Martínez", "García", "López", "Hernández",
                  "Sánchez", "Ramírez", "Pérez", "Díaz", "Muñoz", "Rojas", "Moreno", "Jiménez",
                  "Vargas", "Castro", "Gutiérrez", "Ospina", "Restrepo", "Valencia",
                  "Cardona", "Osorio", "Giraldo", "Zapata", "Montoya", "Quintero", "Arango",
                  "Castaño", "Salazar"),
        places=(
            Place("Bogotá", "CO-DC", ("57300", "57301", "57310", "57311", "57312", "57313",
                                      "57315", "57316", "57320", "57321"), 12,
                  ("Chapinero", "Suba", "Kennedy", "Usaquén", "Engativá", "Bosa", "Teusaquillo"),
                  ("Calle 72", "Carrera 7", "Av. Boyacá", "Calle 80", "Carrera 15",
                   "Av. Primero de Mayo"), 60),
            Place("Medellín", "CO-ANT", ("57300", "57301", "57304", "57310", "57311", "57314",
                                         "57317", "57318", "57350"), 12,
                  ("El Poblado", "Laureles", "Belén", "Robledo", "Envigado", "Bello", "Itagüí"),
                  ("Carrera 70", "Calle 10", "Av. El Poblado", "Carrera 43A", "Calle 33"), 40),
        ),
        company_suffixes=("S.A.S.", "S.A.", "Ltda."),
        email_domains=("gmail.com", "hotmail.com", "outlook.com", "yahoo.com", "une.net.co"),
        payment_methods=("pse", "efecty", "baloto", "transferencia", "nequi"),
        scale=3_000_000.0,
    ),
    Country(
        code="CL", currency="CLP", weight=15,
        female=("Constanza", "Francisca", "Javiera", "Catalina", "Valentina", "Camila",
                "Fernanda", "Carolina", "María José", "Daniela", "Paulina", "Macarena",
                "Andrea", "Claudia", "Marcela", "Patricia", "Jacqueline", "Ximena", "Paz",
                "Trinidad"),
        male=("Juan Pablo", "José", "Cristián", "Felipe", "Matías", "Sebastián", "Rodrigo",
              "Francisco", "Gonzalo", "Nicolás", "Benjamín", "Vicente", "Ignacio", "Patricio",
              "Claudio", "Mauricio", "Álvaro", "Tomás", "Joaquín", "Luis"),
        surnames=("González", "Muñoz", "Rojas", "Díaz", "Pérez", "Soto", "Contreras", "Silva",
                  "Martínez", "Sepúlveda", "Morales", "Rodríguez", "López", "Fuentes",
                  "Hernández", "Torres", "Araya", "Flores", "Espinoza", "Valenzuela",
                  "Castillo", "Tapia", "Reyes", "Gutiérrez", "Castro", "Pizarro", "Álvarez",
                  "Vásquez", "Sánchez", "Fernández"),
        places=(
            Place("Santiago", "CL-RM", tuple(f"569{d}" for d in "3456789"), 11,
                  ("Puente Alto", "Maipú", "La Florida", "Las Condes", "Ñuñoa", "Providencia",
                   "San Bernardo", "Peñalolén"),
                  ("Av. Providencia", "Av. Vicuña Mackenna", "Gran Avenida José Miguel Carrera",
                   "Av. Apoquindo", "Av. Pajaritos", "Calle Irarrázaval"), 70),
            Place("Valparaíso", "CL-VS", tuple(f"569{d}" for d in "3456789"), 11,
                  ("Valparaíso", "Viña del Mar", "Quilpué", "Villa Alemana", "Concón"),
                  ("Av. Brasil", "Av. Libertad", "Calle Condell", "Av. Valparaíso"), 30),
        ),
        company_suffixes=("SpA", "Ltda.", "S.A.", "E.I.R.L."),
        email_domains=("gmail.com", "hotmail.com", "outlook.com", "yahoo.com", "vtr.net"),
        payment_methods=("webpay", "transferencia", "servipag", "khipu"),
        scale=450_000.0,
    ),
)

COMPANY_WORDS = _COMPANY_WORDS
COMPANY_NAMES = _COMPANY_NAMES

# (code, name, description) of the demo's portfolios.
PORTFOLIOS: tuple[tuple[str, str, str], ...] = (
    ("consumo", "Créditos de consumo", "Préstamos personales y vehiculares en cuotas"),
    ("tarjetas", "Tarjetas de crédito", "Saldos de tarjeta de crédito y comisiones"),
    ("pyme", "Cartera PYME", "Facturas y créditos de capital de trabajo de pequeñas empresas"),
)

TAGS_PERSON = ("nomina", "independiente", "whatsapp_ok", "cliente_antiguo", "reincidente",
               "vip", "sin_contacto", "promesa_incumplida", "jubilado", "zona_rural")
TAGS_COMPANY = ("pyme", "corporativo", "proveedor_estado", "sector_comercio",
                "sector_servicios", "sector_construccion")
